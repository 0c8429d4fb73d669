"""Every version kept (who, when, what changed), the readable diff, the admin's history pages, and the audit
log showing the version each answer presented (issue 20)."""

import pytest
from django.urls import reverse

from audit.models import AuditLog
from runbooks.diffs import field_changes, step_changes
from runbooks.models import Runbook, RunbookVersion
from runbooks.services import runbook_upsert
from tests.runbooks.corpus import load_corpus
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

A = {"title": "Check disk usage", "detail": "", "command": "df -h /"}
B = {"title": "Find large files", "detail": "", "command": "du -xh / | sort -h | tail"}
C = {"title": "Prune images", "detail": "Old images only.", "command": "crictl rmi --prune"}


def test_create_then_edit_keeps_both_versions_with_who_and_what(staff_user):
    runbook, _ = runbook_upsert(
        slug="t/disk", data={"name": "DiskFull", "steps": [A, B]}, source="editor", changed_by=staff_user
    )
    runbook_upsert(
        slug="t/disk",
        data={"description": "The disk is full.", "steps": [B, A]},
        changed_by=staff_user,
        source="editor",
    )
    runbook.refresh_from_db()
    assert runbook.version == 2
    first, second = RunbookVersion.objects.filter(runbook=runbook).order_by("number")
    assert (first.number, first.snapshot["steps"], first.changed_by) == (1, [A, B], staff_user)
    assert (second.number, second.snapshot["steps"], second.source) == (2, [B, A], "editor")
    assert second.changed_fields == ["description", "steps"]
    assert second.snapshot["description"] == "The disk is full." and first.snapshot["description"] == ""


def test_saving_the_same_content_adds_no_version():
    runbook_upsert(slug="t/disk", data={"name": "DiskFull", "steps": [A]})
    runbook_upsert(slug="t/disk", data={"name": "DiskFull", "steps": [A]})
    assert Runbook.objects.get(slug="t/disk").version == 1
    assert RunbookVersion.objects.count() == 1


def test_a_runbook_written_before_versions_were_kept_keeps_its_previous_version():
    runbook = RunbookFactory(slug="t/old", steps=[A])  # a row written directly, no version row
    runbook_upsert(slug="t/old", data={"steps": [A, C]})
    versions = list(RunbookVersion.objects.filter(runbook=runbook).order_by("number"))
    assert [(v.number, v.source, v.snapshot["steps"]) for v in versions] == [
        (1, "unrecorded", [A]),
        (2, "import", [A, C]),
    ]


def test_step_diff_names_moves_additions_removals_and_edits():
    assert [c.summary for c in step_changes([A, B, C], [B, A, C])] == ["Step moved from position 2 to 1"]
    assert [c.title for c in step_changes([A, B, C], [B, A, C])] == [B["title"]]
    assert [c.summary for c in step_changes([A, B], [A, B, C])] == ["Step 3 added"]
    assert [c.summary for c in step_changes([A, B, C], [A, C])] == ["Step 2 removed"]
    edited = {**C, "command": "crictl rmi --prune --all"}
    (change,) = step_changes([A, B, C], [A, B, edited])
    assert change.summary == "Step 3 changed"
    assert [(part.label, part.before, part.after) for part in change.parts] == [
        ("Command", "crictl rmi --prune", "crictl rmi --prune --all")
    ]


def test_field_diff_shows_before_and_after_in_words():
    changes = field_changes(
        {"name": "Old", "tags": ["a"], "enabled": True, "body_markdown": "one\ntwo\n"},
        {"name": "New", "tags": ["a", "b"], "enabled": False, "body_markdown": "one\nthree\n"},
    )
    shown = {change.label: (change.before, change.after) for change in changes}
    assert shown["Name"] == ("Old", "New") and shown["Tags"] == ("a", "a, b") and shown["Enabled"] == ("yes", "no")
    body = next(change for change in changes if change.name == "body_markdown")
    assert [(line.kind, line.text) for line in body.lines] == [("same", "one"), ("removed", "two"), ("added", "three")]


def test_admin_history_lists_versions_and_shows_the_diff(client, staff_user):
    runbook, _ = runbook_upsert(slug="t/disk", data={"name": "DiskFull", "steps": [A, B]}, changed_by=staff_user)
    runbook_upsert(slug="t/disk", data={"steps": [B, A, C]}, changed_by=staff_user, source="editor")
    client.force_login(staff_user)
    listing = client.get(reverse("admin:runbooks_runbook_versions", args=[runbook.pk])).content.decode()
    assert "Version 2" in listing and "Version 1" in listing and "runbook editor" in listing
    page = client.get(reverse("admin:runbooks_runbook_version", args=[runbook.pk, 2])).content.decode()
    assert "What changed from version 1 to version 2" in page
    assert "Step 3 added" in page and "Prune images" in page
    assert "Step moved from position 2 to 1" in page
    assert client.get(reverse("admin:runbooks_runbook_version", args=[runbook.pk, 9])).status_code == 404


def test_admin_history_needs_staff(client, user):
    runbook = RunbookFactory()
    client.force_login(user)
    response = client.get(reverse("admin:runbooks_runbook_versions", args=[runbook.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admin_edit_of_access_is_a_version_and_runbooks_are_not_deleted(client, staff_user):
    runbook, _ = runbook_upsert(slug="t/disk", data={"name": "DiskFull", "steps": [A]})
    client.force_login(staff_user)
    url = reverse("admin:runbooks_runbook_change", args=[runbook.pk])
    response = client.post(
        url,
        {
            "slug": "t/disk",
            "name": "DiskFull",
            "display_title": "",
            "description": "",
            "tags": "",
            "status": "retired",
            "enabled": "on",
            "allowed_groups": [],
            "service": "",
            "category": "",
            "automation_ref": "",
            "review_interval_days": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    runbook.refresh_from_db()
    assert (runbook.status, runbook.version) == ("retired", 2)
    version = RunbookVersion.objects.get(runbook=runbook, number=2)
    assert (version.changed_fields, version.changed_by, version.source) == (["status"], staff_user, "admin")
    assert client.get(reverse("admin:runbooks_runbook_delete", args=[runbook.pk])).status_code == 403


def test_audit_logs_before_and_after_an_edit_show_the_version_each_presented(
    client, django_capture_on_commit_callbacks, settings, staff_user
):
    settings.LLM_PROVIDER, settings.ANTHROPIC_API_KEY = "offline", ""
    settings.AIHELPER_CONFIDENCE_THRESHOLD = 0.0
    load_corpus(django_capture_on_commit_callbacks)
    client.force_login(staff_user)
    question = {"message": "Pod payments/api-7f9 is crash looping and restarting every minute"}

    def ask() -> AuditLog:
        response = client.post("/api/ai-helper/query", question, content_type="application/json")
        assert response.status_code == 200, response.content
        return AuditLog.objects.get(pk=response.json()["audit_log_id"])

    before = ask()
    with django_capture_on_commit_callbacks(execute=True):
        runbook, _ = runbook_upsert(slug="t/podcrash", data={"description": "A pod keeps restarting (edited)."})
    after = ask()
    pages = [
        client.get(reverse("admin:audit_auditlog_change", args=[log.pk])).content.decode() for log in (before, after)
    ]
    assert "Version 1 as presented" in pages[0] and "Version 2 as presented" not in pages[0]
    assert "Version 2 as presented" in pages[1]
    old = client.get(reverse("admin:runbooks_runbook_version", args=[runbook.pk, 1])).content.decode()
    assert "A pod container keeps restarting and is in CrashLoopBackOff." in old


def test_any_two_versions_can_be_compared(client, staff_user):
    runbook, _ = runbook_upsert(slug="t/disk", data={"name": "DiskFull", "steps": [A]})
    runbook_upsert(slug="t/disk", data={"steps": [A, B]})
    runbook_upsert(slug="t/disk", data={"steps": [A, B, C]})
    client.force_login(staff_user)
    url = reverse("admin:runbooks_runbook_version", args=[runbook.pk, 3])
    assert "Step 3 added" in client.get(url).content.decode()
    against_first = client.get(f"{url}?against=1").content.decode()
    assert "What changed from version 1 to version 3" in against_first
    assert "Step 2 added" in against_first and "Step 3 added" in against_first
    assert "What changed from version 2 to version 3" in client.get(f"{url}?against=99").content.decode()
