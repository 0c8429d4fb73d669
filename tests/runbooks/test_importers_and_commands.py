import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from runbooks.importers import is_command, runbooks_import, step_from_text
from runbooks.models import Runbook
from runbooks.services import runbook_upsert
from tests.runbooks.corpus import load_corpus

pytestmark = pytest.mark.django_db

UPSTREAM = {
    "slug": "node/nodeclockskewdetected",
    "title": "NodeClockSkewDetected",
    "description": "Clock skew detected.",
    "tags": ["node", "clock"],
    "steps": ["Check the NTP daemon is running.", "timedatectl status", "kubectl get nodes\nNAME STATUS"],
    "body_markdown": "# NodeClockSkewDetected\n",
}
OURS = {
    "slug": "demo/restricted",
    "title": "PaymentsQueueBacklog",
    "description": "Payments queue is backing up.",
    "tags": ["payments"],
    "steps": [{"title": "Scale workers", "detail": "", "command": "kubectl scale deploy/w --replicas 5"}],
    "service": "payments",
    "category": "queue",
    "is_automated": True,
    "automation_ref": "scale-workers",
    "allowed_groups": ["payments-oncall"],
}
MARKDOWN = """---
title: Etcd Members Down
tags: [etcd]
---

# etcdMembersDown

## Meaning

One or more **etcd** members are down.

## Impact

Quorum at risk.

## Diagnosis

- Check member health
  - look at all endpoints
- See the [docs](https://etcd.io)

```shell
etcdctl endpoint health
```

## Mitigation

Restart the member:

```
systemctl restart etcd
```
"""


def _write_jsonl(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_string_steps_become_objects():
    assert step_from_text("Check the NTP daemon is running.") == {
        "title": "Check the NTP daemon is running.",
        "detail": "",
        "command": "",
    }
    assert step_from_text("$ kubectl get pods")["command"] == "kubectl get pods"
    assert is_command("timedatectl status")
    assert is_command('rate(alertmanager_notifications_total{integration="x"}[5m])')
    assert not is_command("Make sure pods have enough resources (CPU, MEM) to work correctly.")


def test_import_both_jsonl_formats_and_markdown_with_invalid_records(tmp_path):
    jsonl = _write_jsonl(
        tmp_path / "runbooks.jsonl",
        [UPSTREAM, OURS, "{not json", {"title": "NoSlug"}, {"slug": "BAD SLUG", "title": "X"}],
    )
    md_dir = tmp_path / "md" / "etcd"
    md_dir.mkdir(parents=True)
    (md_dir / "etcdMembersDown.md").write_text(MARKDOWN)
    report = runbooks_import(paths=[jsonl, tmp_path / "md"])
    assert (report.count("created"), report.count("invalid")) == (3, 3)
    assert [(o.line, o.status) for o in report.invalid] == [(3, "invalid"), (4, "invalid"), (5, "invalid")]
    assert "slug" in report.invalid[2].error

    upstream = Runbook.objects.get(slug="node/nodeclockskewdetected")
    assert [bool(step["command"]) for step in upstream.steps] == [False, True, True]
    ours = Runbook.objects.get(slug="demo/restricted")
    assert ours.is_automated and ours.service == "payments"
    assert list(ours.allowed_groups.values_list("name", flat=True)) == ["payments-oncall"]
    etcd = Runbook.objects.get(slug="etcd/etcdmembersdown")
    assert etcd.name == "etcdMembersDown"
    assert etcd.description == "One or more etcd members are down."
    assert [step["command"] for step in etcd.steps if step["command"]] == [
        "etcdctl endpoint health",
        "systemctl restart etcd",
    ]
    assert etcd.steps[0]["detail"] == "look at all endpoints"

    again = runbooks_import(paths=[jsonl, tmp_path / "md"])
    assert again.count("unchanged") == 3


def test_import_command_reports_and_strict_rolls_back(tmp_path):
    jsonl = _write_jsonl(tmp_path / "r.jsonl", [UPSTREAM, {"slug": "x/y"}])
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 invalid record"):  # exit 1: a scheduled import is seen to fail
        call_command("import_runbooks", str(jsonl), stdout=out, stderr=err)
    assert "1 created, 0 updated, 0 unchanged, 1 invalid" in out.getvalue()
    assert f"{jsonl}:2" in err.getvalue()
    assert Runbook.objects.filter(slug=UPSTREAM["slug"]).exists()  # the valid one is in

    Runbook.objects.all().delete()
    with pytest.raises(CommandError):
        call_command("import_runbooks", str(jsonl), "--strict", stdout=StringIO(), stderr=StringIO())
    assert not Runbook.objects.exists()


def test_malformed_records_are_reported_by_line_and_the_rest_imported(tmp_path):
    """Every way a JSONL line can be wrong is one "invalid file:line" message, never a traceback, and never the
    loss of the good records around it."""
    good = {"slug": "x/good", "title": "GoodOne", "description": "fine"}
    lines = [
        json.dumps(good).encode(),
        b"\xff\xfe not utf-8",
        json.dumps({"slug": "x/a", "title": "A", "steps": "notalist"}).encode(),
        json.dumps({"slug": "x/b", "title": "B", "steps": [{"title": 1}]}).encode(),
        b'{"slug": "x/c", "title": "C", "tags": [NaN]}',
        b"[" * 100_000,
        json.dumps({"slug": "x/d", "title": "D\u0000"}).encode(),
        b'{"slug": "x/e", "title": "E\\ud800"}',
        json.dumps({"slug": "x/f", "title": "F", "allowed_groups": ["g" * 200]}).encode(),
        json.dumps({"slug": "x/g", "title": "G", "aliases": [f"Alert{i}" for i in range(60)]}).encode(),
        json.dumps({"slug": "x/h", "title": "H", "description": "d" * 5000}).encode(),
        json.dumps({"slug": "x/i", "title": "Disk\u202eFull"}).encode(),
        # Whitespace around a name from an export is trimmed, not refused as an invisible character.
        json.dumps({**good, "slug": "x/good-too", "display_title": "Good too\n", "service": " storage ",
                    "tags": ["disk\n", " node"]}).encode(),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines))
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="invalid record"):
        call_command("import_runbooks", str(path), stdout=out, stderr=err)
    reported = err.getvalue()
    assert "Traceback" not in reported
    invalid_lines = sorted(int(m) for m in re.findall(rf"invalid {re.escape(str(path))}:(\d+)", reported))
    assert invalid_lines == list(range(2, 13)), reported
    assert "2 created" in out.getvalue()
    assert set(Runbook.objects.values_list("slug", flat=True)) == {"x/good", "x/good-too"}
    trimmed = Runbook.objects.get(slug="x/good-too")
    assert (trimmed.display_title, trimmed.service, trimmed.tags) == ("Good too", "storage", ["disk", "node"])


def test_generate_embeddings_is_incremental(django_capture_on_commit_callbacks):
    load_corpus(django_capture_on_commit_callbacks)
    out = StringIO()
    call_command("generate_embeddings", stdout=out, stderr=StringIO())
    assert "embedded 0 / unchanged 4 / failed 0" in out.getvalue()

    with django_capture_on_commit_callbacks(execute=True):
        runbook_upsert(slug="t/podcrash", data={"description": "Containers restart over and over."})
    Runbook.objects.filter(slug="t/diskfull").update(embedding_hash="")
    out = StringIO()
    call_command("generate_embeddings", stdout=out, stderr=StringIO())
    assert "embedded 1 / unchanged 3 / failed 0" in out.getvalue()

    out = StringIO()
    call_command(
        "generate_embeddings", "--force", "--slug", "t/podcrash", "--batch-size", "1", stdout=out, stderr=StringIO()
    )
    assert "embedded 1 / unchanged 0 / failed 0" in out.getvalue()


def test_edit_changes_search_without_a_command(django_capture_on_commit_callbacks, staff_user):
    from runbooks.search import runbook_search

    load_corpus(django_capture_on_commit_callbacks)
    before = Runbook.objects.get(slug="t/certexpiry").embedding_hash
    with django_capture_on_commit_callbacks(execute=True):
        runbook_upsert(
            slug="t/certexpiry",
            data={"name": "KafkaConsumerGroupLag", "description": "Kafka consumers fall behind the topic."},
        )
    assert Runbook.objects.get(slug="t/certexpiry").embedding_hash != before
    outcome = runbook_search(query="kafka consumer group lag is growing", user=staff_user)
    assert outcome.results[0].runbook.slug == "t/certexpiry"


def test_search_runbooks_json_and_batch(django_capture_on_commit_callbacks, tmp_path, user):
    load_corpus(django_capture_on_commit_callbacks, groups_for={"t/dbreplication": ["dba"]})
    out = StringIO()
    call_command("search_runbooks", "Pod is crash looping", "--json", stdout=out)
    payload = json.loads(out.getvalue())
    assert payload["results"][0]["slug"] == "t/podcrash"
    assert payload["results"][0]["recommended"] is True

    queries = _write_jsonl(
        tmp_path / "q.jsonl",
        [{"id": "a", "query": "Replication lag on the orders database replica"}, {"id": "b", "query": "  "}],
    )
    out = StringIO()
    call_command("search_runbooks", "--queries", str(queries), "--user", user.username, stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"]
    assert "t/dbreplication" not in [r["slug"] for r in lines[0]["results"]]
    assert len(lines[0]["results"]) == 3
    assert set(lines[0]["results"][0]) == {"slug", "title", "confidence", "recommended"}
    assert lines[1]["results"] == [] and lines[1]["error"]

    with pytest.raises(CommandError):
        call_command("search_runbooks", "   ", stdout=StringIO())

    # Lines that are not UTF-8, a query that is not text, JSON nested too deep: one error line each, no traceback.
    odd = tmp_path / "odd.jsonl"
    odd.write_bytes(b"\xff\xfe\n" + b'{"id": "n", "query": 5}\n' + b"[" * 100_000 + b"\n"
                    + b'{"id": "ok", "query": "Pod is crash looping"}\n')
    out = StringIO()
    call_command("search_runbooks", "--queries", str(odd), stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["id"], line.get("line")) for line in lines] == [(None, 1), (None, 2), (None, 3), ("ok", None)]
    assert lines[-1]["results"][0]["slug"] == "t/podcrash"


def test_import_keeps_source_url_and_aliases_from_jsonl_and_front_matter(tmp_path):
    """A record's own keys; else its front matter, where Hugo's ``aliases`` (old page paths) are not alert
    names and stay in the extra front matter. The corpus slug (``group/name``) is kept as written."""
    jsonl = _write_jsonl(
        tmp_path / "runbooks.jsonl",
        [
            {**UPSTREAM, "source_url": "https://runbooks.example.com/runbooks/node/nodeclockskewdetected",
             "aliases": ["NodeClockSkew", " NodeClockSkew ", "ClockSkew"]},
            {**OURS, "slug": "demo/bad-aliases", "aliases": "not, a list of, names"},
            {**OURS, "slug": "demo/bad-type", "aliases": [1, 2]},
            {**OURS, "slug": "demo/bad-url", "source_url": "ftp://example.com/x"},
        ],
    )
    markdown = tmp_path / "md" / "kubernetes"
    markdown.mkdir(parents=True)
    (markdown / "KubeMemoryOvercommit.md").write_text(
        "---\ntitle: Kube Memory Overcommit\nsource_url: https://runbooks.example.com/kubememoryovercommit\n"
        "aliases:\n  - /kubememovercommit/\n  - KubeMemOvercommit\n---\n\n# KubeMemoryOvercommit\n\n## Meaning\n\n"
        "Cluster has overcommitted memory.\n"
    )
    report = runbooks_import(paths=[jsonl, tmp_path / "md"])
    assert [(outcome.slug, outcome.status) for outcome in report.outcomes][0] == (
        "node/nodeclockskewdetected", "created"
    )
    errors = {outcome.slug: outcome.error for outcome in report.invalid}
    assert "aliases" in errors["demo/bad-aliases"] and "not an alert name" not in errors["demo/bad-aliases"]
    assert errors["demo/bad-type"] == "'aliases' must be a list of alert names"
    assert "source_url" in errors["demo/bad-url"]
    skew = Runbook.objects.get(slug="node/nodeclockskewdetected")
    assert skew.source_url == "https://runbooks.example.com/runbooks/node/nodeclockskewdetected"
    assert skew.aliases == ["NodeClockSkew", "ClockSkew"]
    memory = Runbook.objects.get(slug="kubernetes/kubememoryovercommit")
    assert memory.source_url == "https://runbooks.example.com/kubememoryovercommit"
    assert memory.aliases == ["KubeMemOvercommit"]
    assert memory.front_matter_extra == {"aliases": ["/kubememovercommit/"]}
    assert runbooks_import(paths=[jsonl, tmp_path / "md"]).count("unchanged") == 2


def test_public_corpus_keeps_source_url_and_hugo_aliases_stay_aside(shared_dir):
    path = shared_dir / "data" / "runbooks" / "prometheus_operator_runbooks.jsonl"
    report = runbooks_import(paths=[path])
    assert report.invalid == []
    runbook = Runbook.objects.get(slug="alertmanager/alertmanagerclustercrashlooping")
    assert runbook.source_url == (
        "https://runbooks.prometheus-operator.dev/runbooks/alertmanager/alertmanagerclustercrashlooping"
    )
    overcommit = Runbook.objects.get(slug="kubernetes/kubememoryovercommit")
    assert overcommit.aliases == [] and overcommit.front_matter_extra["aliases"] == ["/kubememovercommit/"]
    assert not Runbook.objects.filter(source_url="").exists()
