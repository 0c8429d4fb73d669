"""``import_runbooks PATH --sync``: a folder of Markdown runbooks kept in step with the catalogue (issue 20)."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from runbooks.models import Runbook, RunbookVersion
from runbooks.search import runbook_search
from runbooks.services import runbook_upsert
from runbooks.sync import runbooks_sync

pytestmark = pytest.mark.django_db

DISK = """---
service: storage
---
# NodeDiskAlmostFull

## Meaning

A filesystem on a node is almost out of free space; writes will start to fail.

## Mitigation

Find the largest directories:

```
du -xh / | sort -h | tail
```
"""
CERT = """# TLSCertificateExpiringSoon

## Meaning

A TLS certificate served by the ingress expires in less than 7 days.

## Mitigation

- Renew the certificate with cert-manager.
"""
KAFKA = """# KafkaConsumerGroupLag

## Meaning

Kafka consumers fall behind the topic; the consumer group lag keeps growing.

## Mitigation

- Scale the consumer deployment out.
"""
BROKEN = """---
title: [unclosed
---
# Broken
"""


def _folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def _sync(path: Path, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_runbooks", str(path), "--sync", "--source", "team-repo", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_add_change_delete_and_a_broken_file(tmp_path, django_capture_on_commit_callbacks, staff_user):
    folder = _folder(tmp_path / "books", {"node/disk.md": DISK, "net/cert.md": CERT})
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = _sync(folder)
    assert "create node/disk" in out and "create net/cert" in out
    assert "Source team-repo: 2 created, 0 updated, 0 retired" in out
    disk = Runbook.objects.get(slug="node/disk")
    assert (disk.origin, disk.origin_source, disk.status, disk.service) == ("import", "team-repo", "active", "storage")

    # Change one file, delete the other, add a new one and a broken one.
    (folder / "node/disk.md").write_text(DISK.replace("almost out of free space", "out of inodes"))
    (folder / "net/cert.md").unlink()
    _folder(folder, {"kafka/lag.md": KAFKA, "node/broken.md": BROKEN})
    with django_capture_on_commit_callbacks(execute=True):
        out, err = _sync(folder)
    assert "update node/disk: description" in out
    assert "create kafka/lag" in out
    assert "retire net/cert: no longer in the source" in out
    assert "node/broken.md:2: cannot parse: front matter is not valid YAML" in err
    assert "1 created, 1 updated, 1 retired, 0 unchanged, 0 skipped, 1 invalid" in out

    cert = Runbook.objects.get(slug="net/cert")
    assert cert.status == "retired"  # kept, with its history: never deleted
    assert list(RunbookVersion.objects.filter(runbook=cert).values_list("number", "source")) == [
        (2, "sync"),
        (1, "sync"),
    ]
    disk.refresh_from_db()
    assert disk.version == 2 and "out of inodes" in disk.description
    assert not Runbook.objects.filter(slug="node/broken").exists()

    # The changed text and the new runbook are searchable (re-embedded on commit); the retired one is not.
    found = [
        r.runbook.slug for r in runbook_search(query="kafka consumer group lag keeps growing", user=staff_user).results
    ]
    assert found[0] == "kafka/lag"
    inodes = runbook_search(query="node filesystem is out of inodes", user=staff_user).results
    assert inodes[0].runbook.slug == "node/disk"
    certificate = runbook_search(query="TLS certificate served by the ingress expires", user=staff_user).results
    assert "net/cert" not in [r.runbook.slug for r in certificate]


def test_a_broken_file_does_not_retire_its_runbook(tmp_path):
    folder = _folder(tmp_path / "books", {"node/disk.md": DISK})
    _sync(folder)
    (folder / "node/disk.md").write_text(BROKEN)
    out, err = _sync(folder)
    assert "node/disk.md:2" in err
    assert "0 retired" in out
    assert Runbook.objects.get(slug="node/disk").status == "active"


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path):
    folder = _folder(tmp_path / "books", {"node/disk.md": DISK, "net/cert.md": CERT})
    _sync(folder)
    (folder / "net/cert.md").unlink()
    (folder / "node/disk.md").write_text(DISK.replace("almost out of free space", "out of inodes"))
    _folder(folder, {"kafka/lag.md": KAFKA})
    before = list(Runbook.objects.order_by("slug").values_list("slug", "status", "version", "description"))
    versions = RunbookVersion.objects.count()

    out, _ = _sync(folder, "--dry-run")
    assert "would create kafka/lag" in out
    assert "would update node/disk: description" in out
    assert "would retire net/cert" in out
    assert "1 would be created, 1 would be updated, 1 would be retired" in out and "dry run: nothing changed" in out
    assert list(Runbook.objects.order_by("slug").values_list("slug", "status", "version", "description")) == before
    assert RunbookVersion.objects.count() == versions


def test_demo_admin_draft_and_other_sources_are_left_alone(tmp_path):
    runbook_upsert(slug="demo/disk", data={"name": "Demo", "origin": "demo", "steps": []}, source="demo")
    runbook_upsert(slug="admin/disk", data={"name": "Mine", "origin": "admin", "steps": []}, source="admin")
    runbook_upsert(slug="gaps/disk", data={"name": "Draft", "origin": "gap_report", "status": "draft", "steps": []})
    runbook_upsert(slug="other/disk", data={"name": "Other", "origin": "import", "origin_source": "other", "steps": []})
    folder = _folder(tmp_path / "books", {"admin/disk.md": DISK, "node/new.md": CERT})
    out, _ = _sync(folder)
    assert "skip admin/disk: belongs to another origin (written in the admin)" in out
    assert "1 created, 0 updated, 0 retired, 0 unchanged, 1 skipped" in out
    rows = dict(Runbook.objects.values_list("slug", "name"))
    assert rows["admin/disk"] == "Mine" and rows["demo/disk"] == "Demo" and rows["gaps/disk"] == "Draft"
    assert set(Runbook.objects.filter(status="active").values_list("slug", flat=True)) == {
        "demo/disk",
        "admin/disk",
        "other/disk",
        "node/new",
    }


def test_an_import_without_a_recorded_source_is_adopted_when_the_folder_names_it(tmp_path):
    runbook_upsert(slug="node/disk", data={"name": "Old", "origin": "import", "steps": []})
    folder = _folder(tmp_path / "books", {"node/disk.md": DISK})
    report = runbooks_sync(path=folder, source="team-repo")
    assert [action.action for action in report.actions] == ["update"]
    assert Runbook.objects.get(slug="node/disk").origin_source == "team-repo"


def test_a_retired_runbook_comes_back_when_its_file_does(tmp_path):
    folder = _folder(tmp_path / "books", {"node/disk.md": DISK, "tls/cert.md": CERT})
    _sync(folder)
    (folder / "node/disk.md").unlink()
    _sync(folder)
    assert Runbook.objects.get(slug="node/disk").status == "retired"
    _folder(folder, {"node/disk.md": DISK})
    out, _ = _sync(folder)
    assert "update node/disk: status" in out
    assert Runbook.objects.get(slug="node/disk").status == "active"


def test_sync_refuses_a_missing_path_and_several_paths(tmp_path):
    with pytest.raises(CommandError, match="no such file or directory"):
        _sync(tmp_path / "nope")
    with pytest.raises(CommandError, match="exactly one"):
        call_command("import_runbooks", str(tmp_path), str(tmp_path), "--sync", stdout=StringIO())
    with pytest.raises(CommandError, match="add --sync"):
        call_command("import_runbooks", str(tmp_path), "--dry-run", stdout=StringIO())


def test_a_json_lines_record_without_a_readable_slug_holds_retirements_back(tmp_path):
    path = tmp_path / "books.jsonl"
    one = '{"slug": "a/one", "title": "One", "steps": ["Look at it."]}'
    two = '{"slug": "a/two", "title": "Two", "steps": ["Look at it too."]}'
    path.write_text(f"{one}\n{two}\n")
    runbooks_sync(path=path, source="lines")
    path.write_text(f"{one}\n{{not json\n")
    report = runbooks_sync(path=path, source="lines")
    assert report.retirements_held and report.of("retire") == []
    assert "books.jsonl:2: invalid JSON" in report.of("invalid")[0].detail
    assert "Retirements held back" in report.summary()
    assert Runbook.objects.get(slug="a/two").status == "active"
    path.write_text(f"{one}\n")
    assert [action.slug for action in runbooks_sync(path=path, source="lines").of("retire")] == ["a/two"]


def test_a_symlink_an_unstorable_file_and_an_empty_folder_harm_nothing(tmp_path):
    outside = tmp_path / "secrets.md"
    outside.write_text("# Leak\n\nDB_PASSWORD=hunter2\n", encoding="utf-8")
    repo = _folder(tmp_path / "repo", {"storage/disk.md": DISK, "bad/nul.md": '---\ntitle: "a\\0b"\n---\n# Nul\n'})
    (repo / "storage" / "leak.md").symlink_to(outside)
    out, err = _sync(repo)
    out += err
    assert Runbook.objects.filter(slug="storage/disk").exists()  # the good file is applied
    assert not Runbook.objects.filter(slug="storage/leak").exists()
    assert not Runbook.objects.filter(description__contains="hunter2").exists()
    assert "storage/leak" in out and "symbolic link" in out and "bad/nul" in out

    empty = tmp_path / "typo"
    empty.mkdir()
    out, err = _sync(empty)
    out += err
    assert Runbook.objects.get(slug="storage/disk").status == "active"  # an empty folder retires nothing
    assert "no runbook at all" in out


def test_a_runbook_stored_before_a_rule_it_breaks_is_reported_not_a_crash_when_it_should_retire(tmp_path):
    """A row saved before names refused invisible characters (migration 0012) cannot be saved as it stands: the
    sync reports it as invalid and retires the rest, instead of ending in a traceback half-way."""
    folder = _folder(tmp_path / "books", {"node/disk.md": DISK, "tls/cert.md": CERT, "kafka/lag.md": KAFKA})
    _sync(folder)
    Runbook.objects.filter(slug="node/disk").update(name="NodeDisk\u202eAlmostFull")  # as an older release stored it
    (folder / "node/disk.md").unlink()
    (folder / "tls/cert.md").unlink()

    report = runbooks_sync(path=folder, source="team-repo")

    actions = {action.slug: (action.action, action.detail) for action in report.actions}
    assert actions["node/disk"][0] == "invalid" and "U+202E" in actions["node/disk"][1]
    assert actions["tls/cert"] == ("retire", "no longer in the source")
    assert Runbook.objects.get(slug="tls/cert").status == "retired"
    assert Runbook.objects.get(slug="node/disk").status == "active"  # left for a person to fix in the editor
