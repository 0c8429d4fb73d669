"""Front matter is data: the importer and migration 0007 store the body without it and without repeated steps."""

import importlib
import json

import pytest
from django.apps import apps as django_apps

from runbooks.bodies import (
    FRONT_MATTER_MAX_CHARS,
    body_without_repeats,
    front_matter_fields,
    runbook_body_fields,
    split_front_matter,
)
from runbooks.embeddings import embedding_hash, runbook_document
from runbooks.importers import normalise_steps, runbooks_import
from runbooks.models import Runbook

migration = importlib.import_module("runbooks.migrations.0007_front_matter_fields")

STEPS = [
    {"title": "Confirm the error ratio", "detail": "Query Prometheus for the ratio.", "command": "curl -s http://p/q"},
    {"title": "Roll back a bad release", "detail": "Return to the previous revision.", "command": "kubectl undo"},
]
BODY = """---
title: Web frontend 5xx error rate high
weight: 20
aliases:
  - /web5xx/
---

# WebFrontend5xx

## Meaning

More than 5% of requests fail.

## Diagnosis

- **Confirm the error ratio.** Query Prometheus for the ratio.

```shell
curl -s http://p/q
```

## Mitigation

- **Roll back a bad release.** Return to the previous revision.

```shell
kubectl undo
```

- If a downstream API fails, follow its runbook.
"""
CLEANED = """## Meaning

More than 5% of requests fail.

## Mitigation

- **Roll back a bad release.** Return to the previous revision.

```shell
kubectl undo
```

- If a downstream API fails, follow its runbook.
"""


def test_front_matter_becomes_fields_and_the_steps_section_goes():
    fields = runbook_body_fields(body=BODY, steps=STEPS, current={"name": "WebFrontend5xx", "tags": ["http"]})
    assert fields["display_title"] == "Web frontend 5xx error rate high"
    assert fields["front_matter_extra"] == {"weight": 20, "aliases": ["/web5xx/"]}
    # Diagnosis only repeated the steps: gone. Mitigation also holds a note that is no step: kept whole.
    # The "# WebFrontend5xx" heading is the name, which the page shows already.
    assert fields["body_markdown"] == CLEANED
    assert "tags" not in fields, "no tags in the front matter: the record's tags stay"


def test_cleaning_is_idempotent():
    once = runbook_body_fields(body=BODY, steps=STEPS, current={"name": "WebFrontend5xx"})
    twice = runbook_body_fields(body=once["body_markdown"], steps=STEPS, current={"name": "WebFrontend5xx"})
    assert twice["body_markdown"] == once["body_markdown"]
    assert twice["front_matter_extra"] == {}


def test_a_body_without_front_matter_or_repeats_is_unchanged():
    body = "Intro.\n\n## Meaning\n\nSomething.\n\n## Diagnosis\n\nLook at the [dashboard](https://grafana/d).\n\n\n"
    assert split_front_matter(body) == ({}, body)
    assert body_without_repeats(body, steps=[{"title": "Look at the dashboard"}], name="Other") == body


def test_a_section_with_a_sub_heading_or_an_image_is_kept():
    steps = [{"title": "kubectl get pods", "detail": "", "command": ""}]
    heading = "## Diagnosis\n\n### Slow disk\n\n```\nkubectl get pods\n```\n"
    image = "## Diagnosis\n\n```\nkubectl get pods\n```\n\n![graph](https://example.com/g.png)\n"
    assert body_without_repeats(heading, steps=steps, name="X") == heading
    assert body_without_repeats(image, steps=steps, name="X") == image
    assert body_without_repeats(heading.replace("### Slow disk\n\n", ""), steps=steps, name="X") == ""


def test_front_matter_fills_only_empty_fields_and_adds_tags():
    body = "---\ntitle: Nice\ndescription: From the file\ntags: [a, b]\nslug: other\ndate: 2024-01-02\n---\nText\n"
    fields = runbook_body_fields(body=body, steps=[], current={"description": "Own", "tags": ["b"]})
    assert fields["display_title"] == "Nice"
    assert "description" not in fields
    assert fields["tags"] == ["b", "a"]
    # The record's own description wins; the file's is kept, not lost.
    assert fields["front_matter_extra"] == {"slug": "other", "date": "2024-01-02", "description": "From the file"}
    assert fields["body_markdown"] == "Text\n"


@pytest.mark.parametrize("body", ["---\ntitle: [unclosed\n---\nx", "---\na: &x 1\nb: *x\n---\nx"])
def test_unreadable_front_matter_is_an_error(body):
    with pytest.raises(ValueError, match="front matter"):
        split_front_matter(body)


@pytest.mark.django_db
def test_the_importer_stores_fields_and_the_clean_body(tmp_path):
    record = {"slug": "t/web", "title": "WebFrontend5xx", "description": "d", "tags": ["http"], "steps": STEPS}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({**record, "body_markdown": BODY}) + "\n")
    assert runbooks_import(paths=[path]).count("created") == 1
    runbook = Runbook.objects.get(slug="t/web")
    assert (runbook.display_title, runbook.body_markdown) == ("Web frontend 5xx error rate high", CLEANED)
    assert runbook.front_matter_extra == {"weight": 20, "aliases": ["/web5xx/"]}
    assert runbooks_import(paths=[path]).count("unchanged") == 1


@pytest.mark.django_db
def test_the_importer_reports_bad_front_matter(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"slug": "t/x", "title": "X", "body_markdown": "---\ntitle: [unclosed\n---\n"}) + "\n")
    report = runbooks_import(paths=[path])
    assert report.count("invalid") == 1 and "body_markdown: front matter" in report.invalid[0].error


@pytest.mark.django_db
def test_the_migration_cleans_existing_rows_once_and_keeps_their_embeddings():
    runbook = Runbook.objects.create(
        slug="t/old", name="WebFrontend5xx", description="d", tags=["http"], steps=STEPS, body_markdown=BODY
    )
    plain = Runbook.objects.create(slug="t/plain", name="Plain", body_markdown="# Other\n\nJust text.\n")
    document = runbook_document(runbook)
    Runbook.objects.filter(pk=runbook.pk).update(embedding_hash=embedding_hash(document, "m"))

    migration.forward(django_apps, None)
    runbook.refresh_from_db()
    assert runbook.body_markdown == CLEANED
    assert runbook.display_title == "Web frontend 5xx error rate high"
    assert runbook.front_matter_extra == {"weight": 20, "aliases": ["/web5xx/"]}
    assert runbook.version == 1
    # What is embedded does not contain the body, so the stored hash still matches: nothing to re-embed.
    assert embedding_hash(runbook_document(runbook), "m") == runbook.embedding_hash
    plain.refresh_from_db()
    assert plain.body_markdown == "# Other\n\nJust text.\n" and plain.front_matter_extra == {}

    before = list(Runbook.objects.order_by("slug").values_list("body_markdown", "display_title", "updated_at"))
    migration.forward(django_apps, None)
    assert list(Runbook.objects.order_by("slug").values_list("body_markdown", "display_title", "updated_at")) == before


def test_the_migration_copy_agrees_with_the_importer(shared_dir):
    """The frozen copy in migration 0007 and runbooks/bodies.py give the same body on the whole corpus today."""
    lines = (shared_dir / "data" / "runbooks" / "prometheus_operator_runbooks.jsonl").read_text().splitlines()
    for line in lines:
        record = json.loads(line)
        steps = normalise_steps(record["steps"])
        front, rest = split_front_matter(record["body_markdown"])
        assert migration.split_front_matter(record["body_markdown"]) == (front, rest)
        ours = body_without_repeats(rest, steps=steps, name=record["title"])
        assert migration.body_without_repeats(rest, steps=steps, name=record["title"]) == ours
        assert "\n---" not in ours[:4] and not ours.startswith("---")


@pytest.mark.django_db
def test_the_admin_shows_the_front_matter_fields(client, staff_user, tmp_path):
    path = tmp_path / "r.jsonl"
    record = {"slug": "t/web", "title": "WebFrontend5xx", "steps": STEPS, "body_markdown": BODY}
    path.write_text(json.dumps(record) + "\n")
    runbooks_import(paths=[path])
    client.force_login(staff_user)
    html = client.get(f"/admin/runbooks/runbook/{Runbook.objects.get(slug='t/web').pk}/change/").content.decode()
    assert 'value="Web frontend 5xx error rate high"' in html
    assert "weight: 20, aliases: [&quot;/web5xx/&quot;]" in html


def test_hostile_front_matter_is_refused_not_expanded_or_crashing():
    laughs = "---\na: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n---\nbody"
    deep = "---\nk: " + "[" * 3000 + "]" * 3000 + "\n---\nbody"
    huge = "---\nk: " + "x" * FRONT_MATTER_MAX_CHARS + "\n---\nbody"
    for text in (laughs, deep, huge):
        with pytest.raises(ValueError):
            split_front_matter(text)
    # A body that opens with a horizontal rule has no front matter: kept whole.
    ruled = "---\n\nIntro paragraph\n\n---\nmore"
    assert split_front_matter(ruled) == ({}, ruled)


def test_front_matter_values_are_never_dropped_and_never_overflow_a_column():
    updates, extra = front_matter_fields(
        {"description": "From front matter", "title": "T" * 300, "tags": ["ok", "t" * 80]},
        current={"description": "The record's own", "tags": []},
    )
    assert "description" not in updates and extra["description"] == "From front matter"
    assert "display_title" not in updates and extra["title"] == "T" * 300
    assert updates["tags"] == ["ok"] and extra["tags"] == ["ok", "t" * 80]


def test_a_section_whose_command_differs_from_the_steps_is_kept():
    steps = [{"title": "Append the marker", "detail": "", "command": "echo 1 >> f"}]
    body = "## Mitigation\n\n```\necho 1 > f\n```\n"
    assert body_without_repeats(body, steps=steps, name="X") == body
    same = "## Mitigation\n\n```\necho 1   >> f\n```\n"
    assert body_without_repeats(same, steps=steps, name="X") == ""
