"""Lifecycle status and origin (issue 20): only active, enabled runbooks are searched; each row says where
it came from; the data migration tells demo runbooks from imported ones."""

import importlib
import json

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError

from runbooks.demo import demo_runbooks_ensure
from runbooks.importers import runbooks_import
from runbooks.models import Runbook, RunbookOrigin, RunbookStatus
from runbooks.search import runbook_search
from runbooks.services import runbook_upsert
from tests.runbooks.corpus import load_corpus
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("runbooks.migrations.0008_status_origin")
QUERY = "Pod payments/api-7f9 is crash looping and restarting every minute"


def _found(user) -> list[str]:
    return [result.runbook.slug for result in runbook_search(query=QUERY, user=user).results]


@pytest.mark.parametrize("status", [RunbookStatus.DRAFT, RunbookStatus.RETIRED])
def test_draft_and_retired_runbooks_are_not_searched(django_capture_on_commit_callbacks, staff_user, status):
    load_corpus(django_capture_on_commit_callbacks)
    assert _found(staff_user)[0] == "t/podcrash"
    with django_capture_on_commit_callbacks(execute=True):
        runbook_upsert(slug="t/podcrash", data={"status": status})
    assert "t/podcrash" not in _found(staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        runbook_upsert(slug="t/podcrash", data={"status": RunbookStatus.ACTIVE})
    assert _found(staff_user)[0] == "t/podcrash"


def test_an_active_runbook_that_is_disabled_is_not_searched(django_capture_on_commit_callbacks, staff_user):
    load_corpus(django_capture_on_commit_callbacks)
    runbook_upsert(slug="t/podcrash", data={"enabled": False})
    assert Runbook.objects.get(slug="t/podcrash").status == RunbookStatus.ACTIVE
    assert "t/podcrash" not in _found(staff_user)


def test_new_rows_are_active_and_written_in_the_admin_by_default():
    runbook = RunbookFactory()
    assert (runbook.status, runbook.origin, runbook.origin_source) == ("active", "admin", "")


def test_a_draft_from_the_gap_report_can_be_created_through_the_service():
    runbook, status = runbook_upsert(
        slug="gaps/redis-eviction",
        data={"name": "RedisEvictions", "status": "draft", "origin": "gap_report", "steps": []},
        source="gap_report",
    )
    assert status == "created"
    assert (runbook.status, runbook.origin) == ("draft", "gap_report")


def test_an_unknown_status_is_refused_with_a_message():
    with pytest.raises(ValidationError) as caught:
        runbook_upsert(slug="t/x", data={"name": "X", "status": "archived"})
    assert "status" in caught.value.message_dict


def test_the_migration_tells_demo_runbooks_from_imported_ones():
    demo = RunbookFactory(slug="demo/host-disk-full")
    imported = RunbookFactory(slug="node/nodeclockskewdetected")
    migration.forward(django_apps, None)
    demo.refresh_from_db()
    imported.refresh_from_db()
    assert (demo.origin, imported.origin) == ("demo", "import")
    assert (demo.status, imported.status) == ("active", "active")


def test_seed_demo_records_demo_origin():
    demo_runbooks_ensure()
    origins = set(Runbook.objects.values_list("origin", flat=True))
    assert origins == {RunbookOrigin.DEMO}


def test_import_records_the_source_path_or_the_name_given(tmp_path):
    path = tmp_path / "books.jsonl"
    path.write_text(json.dumps({"slug": "a/one", "title": "One", "steps": ["Look at it."]}) + "\n")
    runbooks_import(paths=[path])
    runbook = Runbook.objects.get(slug="a/one")
    assert (runbook.origin, runbook.origin_source) == ("import", str(path.resolve()))
    runbooks_import(paths=[path], source="team-repo")
    assert Runbook.objects.get(slug="a/one").origin_source == "team-repo"


def test_the_runbook_page_says_a_draft_is_not_recommended_and_links_the_editor_for_those_who_may_edit(
    client, user, staff_user
):
    draft = RunbookFactory(slug="misc/draft", name="DraftRunbook", status=RunbookStatus.DRAFT)
    retired = RunbookFactory(slug="misc/retired", name="RetiredRunbook", status=RunbookStatus.RETIRED)
    client.force_login(user)
    # A draft is for those who may edit it; an engineer gets the runbook-not-found page.
    assert client.get(f"/runbooks/{draft.pk}/").status_code == 404
    html = client.get(f"/runbooks/{retired.pk}/").content.decode()
    assert "is retired: search and the chat do not recommend it" in html
    assert "Edit this runbook" not in html  # an engineer who may not edit gets no link
    client.force_login(staff_user)
    assert "a draft awaiting review: search and the chat do not recommend it" in client.get(
        f"/runbooks/{draft.pk}/").content.decode()
    html = client.get(f"/runbooks/{draft.pk}/").content.decode()
    assert f'href="/runbooks/{draft.pk}/edit/">Edit this runbook' in html
