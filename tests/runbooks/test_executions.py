import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import RunbookInteractionEvent
from runbooks.models import RunbookExecution
from runbooks.selectors import runbook_success_stats
from tests.aihelper.factories import ChatSessionFactory
from tests.audit.factories import AuditLogFactory
from tests.factories import GroupFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db


def _steps(n):
    return [{"title": f"Step {i}", "detail": "", "command": f"echo {i}"} for i in range(1, n + 1)]


@pytest.fixture
def recommended(user):
    runbook = RunbookFactory(steps=_steps(3))
    audit_log = AuditLogFactory(user=user, query="disk full", presented=[RunbookFactory(), runbook])
    return runbook, audit_log


def _events(audit_log, event_type):
    return list(RunbookInteractionEvent.objects.filter(audit_log=audit_log, event_type=event_type))


def test_execution_flow_end_to_end_from_a_recommendation(auth_client, recommended):
    runbook, audit_log = recommended
    page = auth_client.get(f"/runbooks/{runbook.pk}/?from={audit_log.pk}&source=chat_page")
    assert page.status_code == 200 and b"Start execution" in page.content
    start = auth_client.post(f"/runbooks/{runbook.pk}/executions/", {"from": str(audit_log.pk), "source": "chat_page"})
    assert start.status_code == 302
    execution = RunbookExecution.objects.get()
    assert start["Location"] == f"/runbooks/executions/{execution.pk}/"
    assert execution.audit_log_id == audit_log.pk and execution.status == "in_progress"
    started = _events(audit_log, "started_execution")
    assert [(event.rank, event.source) for event in started] == [(2, "chat_page")]

    for index in (0, 2):
        response = auth_client.post(f"/runbooks/executions/{execution.pk}/steps/{index}/", {"done": "1"},
                                    HTTP_HX_REQUEST="true")
        assert response.status_code == 200
    assert b"2 of 3 steps done" in response.content
    assert b"<html" not in response.content  # htmx gets only the checklist partial
    bad_step = auth_client.post(f"/runbooks/executions/{execution.pk}/steps/7/", {"done": "1"})
    assert bad_step.status_code == 409 and b"no step 8" in bad_step.content

    # Step 2 is not ticked: finishing needs an explicit confirmation, which names it.
    finish_url = f"/runbooks/executions/{execution.pk}/finish/"
    unconfirmed = auth_client.post(finish_url, {"outcome": "succeeded", "notes": "ok"})
    assert unconfirmed.status_code == 400 and b"1 step is not ticked" in unconfirmed.content
    assert b"Step 2: Step 2" in unconfirmed.content and b'name="confirm" value="1"' in unconfirmed.content
    finish = auth_client.post(
        f"/runbooks/executions/{execution.pk}/finish/", {"outcome": "succeeded", "notes": "ok", "confirm": "1"}
    )
    assert finish.status_code == 302
    execution.refresh_from_db()
    assert execution.status == "succeeded" and execution.finished_at and execution.notes == "ok"
    assert set(execution.step_progress) == {"0", "2"}
    assert [(event.rank, event.source) for event in _events(audit_log, "succeeded")] == [(2, "chat_page")]
    assert runbook_success_stats([runbook.pk]) == {runbook.pk: (1, 1)}
    again = auth_client.post(f"/runbooks/executions/{execution.pk}/finish/", {"outcome": "failed"})
    assert again.status_code == 409 and b"already succeeded" in again.content


def test_finish_requires_an_outcome(auth_client, recommended):
    runbook, _ = recommended
    auth_client.post(f"/runbooks/{runbook.pk}/executions/")
    execution = RunbookExecution.objects.get()
    response = auth_client.post(f"/runbooks/executions/{execution.pk}/finish/", {"outcome": "maybe"})
    assert response.status_code == 400 and b"Choose succeeded or failed" in response.content
    assert RunbookExecution.objects.get().status == "in_progress"


def test_notes_with_a_nul_character_are_refused_in_words_and_the_run_stays_open(auth_client, recommended):
    runbook, _ = recommended
    auth_client.post(f"/runbooks/{runbook.pk}/executions/")
    execution = RunbookExecution.objects.get()
    response = auth_client.post(f"/runbooks/executions/{execution.pk}/finish/",
                                {"outcome": "failed", "notes": "disk a\x00b", "confirm": "1"})
    assert response.status_code == 400 and b"NUL character" in response.content
    assert RunbookExecution.objects.get().status == "in_progress"


def test_someone_elses_execution_is_404(client, other_user, auth_client, recommended):
    runbook, _ = recommended
    auth_client.post(f"/runbooks/{runbook.pk}/executions/")
    execution = RunbookExecution.objects.get()
    client.force_login(other_user)
    assert client.get(f"/runbooks/executions/{execution.pk}/").status_code == 404
    assert client.post(f"/runbooks/executions/{execution.pk}/finish/", {"outcome": "failed"}).status_code == 404
    assert RunbookExecution.objects.get().status == "in_progress"


def test_restricted_runbook_cannot_be_started_by_outsiders(auth_client):
    runbook = RunbookFactory(allowed_groups=[GroupFactory(name="dba")])
    assert auth_client.post(f"/runbooks/{runbook.pk}/executions/").status_code == 404
    assert RunbookExecution.objects.count() == 0


def test_automated_runbook_needs_group_or_staff(auth_client, user):
    group = GroupFactory(name="ops")
    runbook = RunbookFactory(is_automated=True)
    runbook.allowed_groups.add(group)
    assert auth_client.post(f"/runbooks/{runbook.pk}/executions/").status_code == 404  # not visible at all
    user.groups.add(group)
    assert auth_client.post(f"/runbooks/{runbook.pk}/executions/").status_code == 302
    open_automated = RunbookFactory(is_automated=True)
    other_group_user_page = auth_client.get(f"/runbooks/{open_automated.pk}/")
    assert b"Start execution" not in other_group_user_page.content
    assert auth_client.post(f"/runbooks/{open_automated.pk}/executions/").status_code == 403


def test_viewed_detail_is_recorded_once_per_window_with_the_rank(auth_client, recommended):
    runbook, audit_log = recommended
    for _ in range(3):
        assert auth_client.get(f"/runbooks/{runbook.pk}/?from={audit_log.pk}&source=widget").status_code == 200
    views = _events(audit_log, "viewed_detail")
    assert [(event.rank, event.source) for event in views] == [(2, "widget")]
    auth_client.get(f"/runbooks/{runbook.pk}/")  # not from a recommendation
    auth_client.get(f"/runbooks/{runbook.pk}/?from=not-a-uuid")
    assert len(_events(audit_log, "viewed_detail")) == 1


def test_viewed_detail_ignores_someone_elses_audit_log(client, other_user, recommended):
    runbook, audit_log = recommended
    client.force_login(other_user)
    assert client.get(f"/runbooks/{runbook.pk}/?from={audit_log.pk}").status_code == 200
    assert _events(audit_log, "viewed_detail") == []


def test_close_stale_executions_marks_old_runs_abandoned(auth_client, recommended, capsys):
    runbook, audit_log = recommended
    auth_client.post(f"/runbooks/{runbook.pk}/executions/", {"from": str(audit_log.pk)})
    auth_client.post(f"/runbooks/{runbook.pk}/executions/")
    old, fresh = RunbookExecution.objects.order_by("started_at")
    RunbookExecution.objects.filter(pk=old.pk).update(started_at=timezone.now() - dt.timedelta(hours=30))
    call_command("close_stale_executions", "--older-than-hours", "12")
    assert "1 executions marked abandoned" in capsys.readouterr().out
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == ("abandoned", "in_progress")
    assert RunbookInteractionEvent.objects.filter(event_type="abandoned").count() == 1
    call_command("close_stale_executions", "--older-than-hours", "12")
    assert "0 executions marked abandoned" in capsys.readouterr().out


def test_did_not_work_without_a_note_asks_for_one(auth_client, recommended):
    runbook, _ = recommended
    auth_client.post(f"/runbooks/{runbook.pk}/executions/")
    execution = RunbookExecution.objects.get()
    for index in range(3):
        auth_client.post(f"/runbooks/executions/{execution.pk}/steps/{index}/", {"done": "1"})
    response = auth_client.post(f"/runbooks/executions/{execution.pk}/finish/", {"outcome": "failed", "notes": "  "})
    assert response.status_code == 400 and "without a note" in response.content.decode()
    assert b"not ticked" not in response.content
    assert RunbookExecution.objects.get().status == "in_progress"
    noted = auth_client.post(
        f"/runbooks/executions/{execution.pk}/finish/", {"outcome": "failed", "notes": "disk still full"}
    )
    assert noted.status_code == 302 and RunbookExecution.objects.get().status == "failed"


def test_finished_run_links_back_to_the_chat_answer_it_came_from(auth_client, user):
    runbook = RunbookFactory(steps=_steps(2))
    session = ChatSessionFactory(user=user)
    audit_log = AuditLogFactory(user=user, query="disk full", presented=[runbook], session=session)
    auth_client.post(f"/runbooks/{runbook.pk}/executions/", {"from": str(audit_log.pk), "source": "chat_page"})
    execution = RunbookExecution.objects.get()
    auth_client.post(f"/runbooks/executions/{execution.pk}/finish/", {"outcome": "succeeded", "confirm": "1"})
    page = auth_client.get(f"/runbooks/executions/{execution.pk}/").content.decode()
    assert f'href="/chat/{audit_log.session_id}/#answer-{audit_log.pk}"' in page
    assert "Back to the chat answer that led here" in page

    direct = RunbookFactory(steps=_steps(1))
    auth_client.post(f"/runbooks/{direct.pk}/executions/")
    other = RunbookExecution.objects.get(runbook=direct)
    assert f'href="/runbooks/{direct.pk}/"' in auth_client.get(f"/runbooks/executions/{other.pk}/").content.decode()


def test_without_javascript_finish_anyway_keeps_the_note_typed_after_the_warning(auth_client, recommended):
    runbook, _ = recommended
    auth_client.post(f"/runbooks/{runbook.pk}/executions/")
    execution = RunbookExecution.objects.get()
    warning = auth_client.post(f"/runbooks/executions/{execution.pk}/finish/", {"outcome": "failed", "notes": ""})
    page = warning.content.decode()
    assert warning.status_code == 400
    # "Finish anyway" submits the form that holds the notes box, and that form now carries the confirmation.
    assert 'form="finish-form" name="outcome" value="failed"' in page
    finish_form = page[page.index('id="finish-form"') :]
    assert 'name="confirm" value="1"' in finish_form[: finish_form.index("</form>")]
    assert 'name="notes"' in finish_form[: finish_form.index("</form>")]
    # What that browser sends: the note typed after the warning, the confirmation and the button's outcome.
    sent = {"confirm": "1", "notes": "restart did not help", "outcome": "failed"}
    done = auth_client.post(f"/runbooks/executions/{execution.pk}/finish/", sent)
    assert done.status_code == 302
    assert RunbookExecution.objects.get().notes == "restart did not help"


def test_close_stale_executions_refuses_a_period_out_of_range_in_words():
    for hours in ("0", "-1", "1e9"):  # 1e9 hours would overflow a date (was a traceback)
        with pytest.raises(CommandError, match="positive and at most"):
            call_command("close_stale_executions", "--older-than-hours", hours, stdout=StringIO())
