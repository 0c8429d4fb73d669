"""The runbook editor (issue 20): who may use it, steps as rows, messages by the fields with nothing typed
lost, front matter read into fields, the live preview through the sanitising renderer, review due."""

import datetime
import re
import threading

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from runbooks.authoring_access import review_due
from runbooks.models import Runbook, RunbookVersion
from runbooks.services import StaleRunbookVersion, runbook_save_from_editor, runbook_upsert
from tests.factories import GroupFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

NEW = reverse("runbooks:new")
PREVIEW = reverse("runbooks:authoring_preview")


def _post(**overrides) -> dict:
    data = {
        "name": "DiskFull",
        "slug": "node/diskfull",
        "description": "The disk is full.",
        "tags": "disk, node",
        "status": "active",
        "body_markdown": "## Notes\n\nCall the storage team.",
        "step_title": ["Check usage", "Find big files", "Clean up"],
        "step_detail": ["", "Look under /var.", ""],
        "step_command": ["df -h", "du -xh / | sort -h | tail", ""],
    }
    data.update(overrides)
    return data


def test_staff_create_a_runbook_with_steps_in_order(client, staff_user):
    client.force_login(staff_user)
    assert client.get(NEW).status_code == 200
    response = client.post(NEW, _post())
    assert response.status_code == 302
    runbook = Runbook.objects.get(slug="node/diskfull")
    assert [step["title"] for step in runbook.steps] == ["Check usage", "Find big files", "Clean up"]
    assert runbook.steps[1] == {
        "title": "Find big files",
        "detail": "Look under /var.",
        "command": "du -xh / | sort -h | tail",
    }
    assert (runbook.origin, runbook.tags, runbook.version) == ("admin", ["disk", "node"], 1)
    assert response["Location"] == f"{reverse('runbooks:edit', args=[runbook.pk])}?saved=1"
    version = RunbookVersion.objects.get(runbook=runbook)
    assert (version.source, version.changed_by) == ("editor", staff_user)


def test_invalid_input_is_shown_by_the_field_and_nothing_typed_is_lost(client, staff_user):
    client.force_login(staff_user)
    response = client.post(
        NEW,
        _post(name="", step_title=["Check usage", "", "Clean up"], review_interval_days="soon"),
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Give the runbook a name: the alert it answers." in page
    assert "Give step 2 a title: what the engineer does, in a few words." in page
    assert "Write the review interval as a whole number of days, e.g. 90." in page
    # What was typed is all there: the other fields, the step without a title keeps its detail and command.
    assert 'value="node/diskfull"' in page and "The disk is full." in page and "Look under /var." in page
    assert "du -xh / | sort -h | tail" in page and 'value="Clean up"' in page
    assert (
        'id="step-2-title" name="step_title" value="" maxlength="4000" autocomplete="off" aria-invalid="true"' in page
    )
    assert not Runbook.objects.exists()


def test_a_used_address_is_refused_in_words(client, staff_user):
    RunbookFactory(slug="node/diskfull")
    client.force_login(staff_user)
    page = client.post(NEW, _post()).content.decode()
    assert "A runbook already has this address: choose another one." in page


def test_front_matter_is_read_into_fields_and_not_kept_as_content(client, staff_user):
    client.force_login(staff_user)
    body = "---\ntitle: Disk is full\nservice: storage\nweight: 3\n---\n## Notes\n\nCall storage."
    client.post(NEW, _post(body_markdown=body))
    runbook = Runbook.objects.get(slug="node/diskfull")
    assert (runbook.display_title, runbook.service) == ("Disk is full", "storage")
    assert runbook.body_markdown == "## Notes\n\nCall storage."
    assert runbook.front_matter_extra == {"weight": 3}


def test_edit_makes_a_new_version_and_members_of_the_owning_group_may_edit(client, user, other_user):
    owners = GroupFactory(name="storage")
    user.groups.add(owners)
    runbook, _ = runbook_upsert(
        slug="node/diskfull",
        data={
            "name": "DiskFull",
            "owner_group": owners,
            "steps": [{"title": "Check usage", "detail": "", "command": "df -h"}],
        },
    )
    url = reverse("runbooks:edit", args=[runbook.pk])
    client.force_login(other_user)
    assert client.get(url).status_code == 403
    assert client.post(NEW, _post()).status_code == 403
    client.force_login(user)
    assert client.get(url).status_code == 200
    response = client.post(url, _post(slug="ignored/slug", version=1, owner_group=""))
    assert response.status_code == 302, response.content.decode()[:3000]
    runbook.refresh_from_db()
    assert runbook.slug == "node/diskfull" and runbook.version == 2 and len(runbook.steps) == 3
    assert runbook.owner_group == owners  # an owner cannot hand the runbook away
    assert runbook.reviewed_at is not None


def test_a_stale_form_is_not_saved_over_a_newer_version(client, staff_user):
    runbook, _ = runbook_upsert(slug="node/diskfull", data={"name": "DiskFull", "steps": []})
    runbook_upsert(slug="node/diskfull", data={"description": "newer"})
    client.force_login(staff_user)
    response = client.post(reverse("runbooks:edit", args=[runbook.pk]), _post(version=1))
    assert response.status_code == 400
    assert "Someone saved version 2 while you were editing" in response.content.decode()
    assert Runbook.objects.get(pk=runbook.pk).description == "newer"
    # The page now carries version 2 with the text kept: having compared, saving again goes through.
    carried = re.search(r'name="version" value="(\d+)"', response.content.decode())
    assert carried and carried.group(1) == "2"
    again = client.post(reverse("runbooks:edit", args=[runbook.pk]), _post(version=carried.group(1)))
    assert again.status_code == 302
    assert (Runbook.objects.get(pk=runbook.pk).description, Runbook.objects.get(pk=runbook.pk).version) == (
        "The disk is full.", 3)


def _editor_holding_the_row(user, description: str) -> tuple[threading.Thread, threading.Event]:
    """Another editor saves version 1 -> 2 in its own transaction and keeps the row locked until the returned
    event is set; returns once that save is made (not committed)."""
    saved, release = threading.Event(), threading.Event()

    def other_editor():
        try:
            with transaction.atomic():
                runbook_save_from_editor(slug="node/diskfull", data={"description": description}, owner_group=None,
                                         user=user, new=False, expected_version=1)
                saved.set()
                release.wait(10)  # still in its transaction: the row stays locked
        finally:
            connection.close()

    thread = threading.Thread(target=other_editor)
    thread.start()
    assert saved.wait(10)
    return thread, release


@pytest.mark.django_db(transaction=True)
def test_of_two_editors_saving_the_same_version_at_once_the_second_is_refused(staff_user):
    """Both forms were opened on version 1 and both passed the form's check; the first save holds the row while
    the second arrives. The second must not overwrite the first: it is refused with the version now stored."""
    runbook_upsert(slug="node/diskfull", data={"name": "DiskFull", "steps": []})
    thread, release = _editor_holding_the_row(staff_user, "first")
    threading.Timer(0.5, release.set).start()  # the first commits while the second waits for the row
    with pytest.raises(StaleRunbookVersion) as refused:
        runbook_save_from_editor(slug="node/diskfull", data={"description": "second"}, owner_group=None,
                                 user=staff_user, new=False, expected_version=1)
    thread.join(10)
    assert refused.value.current == 2
    stored = Runbook.objects.get(slug="node/diskfull")
    assert (stored.description, stored.version) == ("first", 2)


@pytest.mark.django_db(transaction=True)
def test_the_editor_page_refuses_a_save_that_lost_the_race_and_keeps_what_was_typed(client, staff_user, monkeypatch):
    """Through the page: the form is checked against version 1 (the other save has not committed yet), then the
    save waits for the row and finds version 2. The engineer gets the page back, not a 500 and not a silent
    overwrite: the message, the text typed, and version 2 to compare against."""
    runbook, _ = runbook_upsert(slug="node/diskfull", data={"name": "DiskFull", "steps": []})
    refused = []

    def page_save(**kwargs):
        # Reached only after the page's form check passed on version 1; the other editor commits while this save
        # waits for the row.
        threading.Timer(0.5, release.set).start()
        try:
            return runbook_save_from_editor(**kwargs)
        except StaleRunbookVersion as exc:
            refused.append(exc.current)
            raise

    monkeypatch.setattr("runbooks.authoring.runbook_save_from_editor", page_save)
    thread, release = _editor_holding_the_row(staff_user, "theirs")
    client.force_login(staff_user)
    response = client.post(reverse("runbooks:edit", args=[runbook.pk]), _post(version=1, description="mine"))
    release.set()
    thread.join(10)
    assert refused == [2]  # the save itself refused it (not the form's earlier check)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Someone saved version 2 while you were editing" in page
    assert "mine" in page  # what the engineer typed is still in the form
    assert re.search(r'name="version" value="2"', page)
    stored = Runbook.objects.get(pk=runbook.pk)
    assert (stored.description, stored.version) == ("theirs", 2)


def test_page_preview_shows_the_page_and_saves_nothing(client, staff_user):
    client.force_login(staff_user)
    response = client.post(NEW, _post(preview="page"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "the runbook page as the engineer sees it (not saved)" in page
    assert '<pre class="command" tabindex="0"><code>df -h</code></pre>' in page
    assert "<h2>Notes</h2>" in page
    assert not Runbook.objects.exists()


def test_live_preview_uses_the_sanitising_renderer_and_names_the_metadata(client, staff_user):
    client.force_login(staff_user)
    body = "---\nservice: storage\n---\n# Hi <script>alert(1)</script>\n\n[x](javascript:alert(1))"
    payload = client.post(PREVIEW, {"body_markdown": body}).json()
    assert "<script" not in payload["html"] and "&lt;script&gt;" in payload["html"]
    assert 'href="javascript' not in payload["html"]
    assert "service: storage" not in payload["html"] and payload["front_matter"] == ["service"]
    bad = client.post(PREVIEW, {"body_markdown": "---\ntitle: [unclosed\n---\n"})
    assert bad.status_code == 400 and "metadata block" in bad.json()["error"]
    assert client.post(PREVIEW, {}).status_code == 400


def test_live_preview_is_only_for_people_who_may_write(client, user):
    assert client.post(PREVIEW, {"body_markdown": "x"}).status_code == 401
    client.force_login(user)
    assert client.post(PREVIEW, {"body_markdown": "x"}).status_code == 403
    assert client.get(PREVIEW).status_code == 405


def test_review_due_names_the_owners_in_the_admin(client, staff_user):
    owners = GroupFactory(name="storage")
    runbook = RunbookFactory(owner_group=owners, review_interval_days=30)
    Runbook.objects.filter(pk=runbook.pk).update(reviewed_at=timezone.now() - datetime.timedelta(days=31))
    RunbookFactory(review_interval_days=30, reviewed_at=timezone.now())
    assert list(review_due(Runbook.objects.all())) == [runbook]
    client.force_login(staff_user)
    page = client.get(reverse("admin:runbooks_runbook_changelist") + "?review=due").content.decode()
    assert "review due" in page and reverse("admin:auth_group_change", args=[owners.pk]) in page


def test_someone_who_may_not_see_the_runbook_gets_not_found_not_forbidden(client, other_user):
    hidden = RunbookFactory(allowed_groups=[GroupFactory(name="dba")])
    client.force_login(other_user)
    response = client.get(reverse("runbooks:edit", args=[hidden.pk]))
    assert response.status_code == 404 and "Runbook not found" in response.content.decode()


def test_a_restricted_runbook_is_not_found_in_the_editor_or_its_history_for_those_outside_its_groups(
    client, user
):
    from tests.factories import UserFactory

    secret, owners = GroupFactory(name="secret"), GroupFactory(name="team-a")
    runbook = RunbookFactory(slug="sec/vault", name="VaultUnseal", allowed_groups=[secret], owner_group=owners,
                             steps=[{"title": "Unseal with the secret share", "detail": "", "command": ""}])
    staff = UserFactory(username="staff-outside", is_staff=True)  # staff, not superuser, not in "secret"
    user.groups.add(owners)  # owns it, may not see it
    for who in (staff, user):
        client.force_login(who)
        edit = client.get(reverse("runbooks:edit", args=[runbook.pk]))
        assert edit.status_code == 404 and "Unseal with the secret share" not in edit.content.decode()
        assert client.post(reverse("runbooks:edit", args=[runbook.pk]), _post(version=1)).status_code == 404
    client.force_login(staff)
    versions = f"/admin/runbooks/runbook/{runbook.pk}/versions/"
    assert client.get(versions).status_code == 404 and client.get(versions + "1/").status_code == 404
    runbook.refresh_from_db()
    assert runbook.name == "VaultUnseal"


def test_text_postgresql_cannot_store_is_a_message_by_the_field_not_a_500(client, staff_user):
    client.force_login(staff_user)
    page = client.post(NEW, _post(step_title=["Check\x00usage", "Find big files", "Clean up"]))
    assert page.status_code == 400 and "Step 1&#x27;s title has a NUL character" in page.content.decode()
    for front in ('title: "a\\0b"', 'title: "\\ud800"', "weight: .inf"):
        response = client.post(NEW, _post(body_markdown=f"---\n{front}\n---\n## Notes\n\nx"))
        assert response.status_code == 400, front
    assert not Runbook.objects.exists()
    assert client.get(f"{NEW}?saved=²").status_code == 200


def test_aliases_and_source_url_are_edited_with_messages_in_words(client, staff_user):
    client.force_login(staff_user)
    response = client.post(NEW, _post(aliases="Kube Pod Crash, ok", source_url="ftp://example.com/x"))
    assert response.status_code == 400
    body = response.content.decode()
    assert "is not an alert name" in body and "an http(s) URL" in body
    response = client.post(
        NEW, _post(aliases="KubePodCrashLooping, kube:pod.crash-1 ,KubePodCrashLooping", source_url="https://r.example/x")
    )
    assert response.status_code == 302
    runbook = Runbook.objects.get(slug="node/diskfull")
    assert (runbook.aliases, runbook.source_url) == (["KubePodCrashLooping", "kube:pod.crash-1"], "https://r.example/x")
    page = client.get(reverse("runbooks:edit", args=[runbook.pk])).content.decode()
    assert 'value="KubePodCrashLooping, kube:pod.crash-1"' in page and 'value="https://r.example/x"' in page
    # Saving the page as it is keeps them (they are not lost by an edit of something else).
    client.post(reverse("runbooks:edit", args=[runbook.pk]), _post(
        slug="", aliases="KubePodCrashLooping, kube:pod.crash-1", source_url="https://r.example/x",
        description="Changed.", version="1",
    ))
    runbook.refresh_from_db()
    names = ["KubePodCrashLooping", "kube:pod.crash-1"]
    assert (runbook.description, runbook.aliases, runbook.version) == ("Changed.", names, 2)
    snapshot = RunbookVersion.objects.get(runbook=runbook, number=1).snapshot
    assert (snapshot["aliases"], snapshot["source_url"]) == (names, "https://r.example/x")


def test_front_matter_in_the_editor_fills_source_url_and_aliases(client, staff_user):
    client.force_login(staff_user)
    body = "---\nsource_url: https://r.example/disk\naliases: [HostOutOfDiskSpace, /old/path/]\n---\n## Notes\n\nx"
    assert client.post(NEW, _post(body_markdown=body)).status_code == 302
    runbook = Runbook.objects.get(slug="node/diskfull")
    assert (runbook.source_url, runbook.aliases) == ("https://r.example/disk", ["HostOutOfDiskSpace"])
    assert runbook.front_matter_extra == {"aliases": ["/old/path/"]}


def test_admin_edits_aliases_as_one_line(client, staff_user):
    runbook = RunbookFactory(slug="t/x", name="X")
    client.force_login(staff_user)
    url = reverse("admin:runbooks_runbook_change", args=[runbook.pk])
    page = client.get(url).content.decode()
    assert 'name="aliases"' in page and 'name="source_url"' in page
    form = {
        "slug": "t/x", "name": "X", "status": "active", "enabled": "on", "aliases": "A1, b.2 ", "source_url": "",
        "tags": "", "description": "",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    runbook.refresh_from_db()
    assert runbook.aliases == ["A1", "b.2"]
    response = client.post(url, {**form, "aliases": "A1, not one"})
    assert response.status_code == 200 and "is not an alert name" in response.content.decode()


def test_a_value_from_the_front_matter_that_the_model_refuses_is_a_400_by_its_field(client, staff_user):
    """Front matter fills fields after the form checked them: an over-long or broken source_url from it was a 500."""
    client.force_login(staff_user)
    client.post(NEW, _post())
    runbook = Runbook.objects.get(slug="node/diskfull")
    edit = reverse("runbooks:edit", args=[runbook.pk])
    aliases = "[" + ", ".join(f"Alert{i}" for i in range(60)) + "]"
    for front, words in ((f"source_url: https://example.com/{'a' * 600}", "at most 500"),
                         ("source_url: https://exa mple..com/x", "valid URL"),
                         (f"aliases: {aliases}", "at most 50 alert names"),  # the editor's own limits hold too
                         (f"description: {'d' * 5000}", "at most 4000 characters")):
        body = f"---\n{front}\n---\nbody"
        # Front matter fills the fields the form leaves empty.
        response = client.post(edit, _post(version=runbook.version, body_markdown=body, description=""))
        assert response.status_code == 400, (front[:40], response.status_code)
        assert words in response.content.decode(), front[:40]
    assert Runbook.objects.get(pk=runbook.pk).version == runbook.version  # nothing saved


def test_an_edit_without_the_version_it_was_opened_on_is_refused(client, staff_user):
    """A post without the form's version could not be told from a stale one: it must not overwrite."""
    client.force_login(staff_user)
    client.post(NEW, _post())
    runbook = Runbook.objects.get(slug="node/diskfull")
    response = client.post(reverse("runbooks:edit", args=[runbook.pk]), _post(description="overwritten"))
    assert response.status_code == 400 and "which version it was opened on" in response.content.decode()
    stored = Runbook.objects.get(pk=runbook.pk)
    assert (stored.description, stored.version) == ("The disk is full.", runbook.version)


@pytest.mark.parametrize(("field", "value", "code"), [
    ("name", "Disk\u202eFull", "U+202E"),  # right-to-left override: displays reversed from here on
    ("display_title", "Disk\u200bfull", "U+200B"),  # zero-width space
    ("service", "stor\u2066age", "U+2066"),
    ("category", "node\x07", "U+0007"),
])
def test_a_name_with_an_invisible_or_direction_changing_character_is_refused(client, staff_user, field, value, code):
    """A runbook whose name displays as another one's ("gnp.exe" shown as "exe.png") must not be created."""
    client.force_login(staff_user)
    response = client.post(NEW, _post(**{field: value}))
    assert response.status_code == 400, response.status_code  # the form again, with the field's error
    page = response.content.decode()
    assert f"direction-changing character ({code})" in page
    assert not Runbook.objects.filter(slug="node/diskfull").exists()


def test_a_tag_with_a_zero_width_character_is_a_400_by_its_field(client, staff_user):
    client.force_login(staff_user)
    response = client.post(NEW, _post(tags="disk, no\u200ddes"))
    assert response.status_code == 400
    assert "direction-changing character (U+200D)" in response.content.decode()
    assert not Runbook.objects.filter(slug="node/diskfull").exists()
