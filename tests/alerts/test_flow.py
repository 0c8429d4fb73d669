"""From webhook to recommendation with a real worker: Alertmanager and Grafana payloads over HTTP, the
jobs written in the intake's transaction, `manage.py worker --until-idle` taking them from PostgreSQL, the
ranking stored on each alert; repeats defer nothing new; a job that keeps failing marks its alert failed."""

from __future__ import annotations

import copy

import pytest
from django.core.management import call_command
from django.db import connection
from procrastinate.contrib.django.models import ProcrastinateJob

from alerts import tasks as alert_tasks
from alerts.models import Alert, AlertPresentation, AlertRecommendation, RecommendationState
from audit.models import EventType, RunbookInteractionEvent
from tests.alerts.factories import AlertReceiverFactory
from tests.alerts.test_webhook import GRAFANA_URL, fixture, post
from tests.factories import UserFactory
from tests.runbooks.corpus import load_corpus

pytestmark = pytest.mark.usefixtures("empty_task_queue")


@pytest.fixture
def library(django_capture_on_commit_callbacks):
    load_corpus(django_capture_on_commit_callbacks)


def _first_runbooks() -> dict[str, str]:
    rows = AlertRecommendation.objects.filter(rank=1).select_related("alert", "runbook")
    return {row.alert.fingerprint: row.runbook.slug for row in rows}


def test_posted_alerts_are_recommended_by_the_worker_once(client, library):
    receiver = AlertReceiverFactory()
    firing = fixture("alertmanager_firing.json")
    assert post(client, firing, token=receiver.token).status_code == 200
    grafana = fixture("grafana_firing.json")
    assert post(client, grafana, token=receiver.token, url=GRAFANA_URL).status_code == 200
    stored = Alert.objects.count()
    assert stored == len(firing["alerts"]) + len(grafana["alerts"])
    assert ProcrastinateJob.objects.filter(task_name="alerts.recommend", status="todo").count() == stored
    assert set(Alert.objects.values_list("recommendation_state", flat=True)) == {RecommendationState.PENDING}

    call_command("worker", "--until-idle")

    assert set(Alert.objects.values_list("recommendation_state", flat=True)) == {RecommendationState.DONE}
    first = _first_runbooks()
    # The disk alerts of the Alertmanager group find the disk runbook of the library.
    assert {first[alert["fingerprint"]] for alert in firing["alerts"]} == {"t/diskfull"}
    assert not ProcrastinateJob.objects.exists()

    # Alertmanager's repeat (repeat_interval) and retries: same rows, no new job, the ranking kept once.
    rankings = AlertRecommendation.objects.count()
    assert post(client, copy.deepcopy(firing), token=receiver.token).status_code == 200
    assert not ProcrastinateJob.objects.exists()
    call_command("worker", "--until-idle")
    assert Alert.objects.count() == stored and AlertRecommendation.objects.count() == rankings


def test_a_job_that_fails_on_its_last_attempt_marks_the_alert_failed(client, library, monkeypatch):
    receiver = AlertReceiverFactory()
    body = fixture("alertmanager_firing.json")
    body["alerts"] = body["alerts"][:1]
    assert post(client, body, token=receiver.token).status_code == 200
    # Fault injection: the search fails (as it would with the database gone) on the job's last attempt.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE procrastinate_jobs SET attempts = %s", [alert_tasks.RECOMMEND_RETRY.max_attempts])

    def broken(*, alert_id):
        raise RuntimeError("search unavailable")

    monkeypatch.setattr(alert_tasks, "alert_recommend", broken)
    call_command("worker", "--until-idle")

    alert = Alert.objects.get()
    assert alert.recommendation_state == RecommendationState.FAILED
    assert list(ProcrastinateJob.objects.values_list("status", flat=True)) == ["failed"]


def test_an_earlier_failed_attempt_is_retried_and_leaves_the_alert_pending(client, library, monkeypatch):
    receiver = AlertReceiverFactory()
    body = fixture("alertmanager_firing.json")
    body["alerts"] = body["alerts"][:1]
    assert post(client, body, token=receiver.token).status_code == 200

    def broken(*, alert_id):
        raise RuntimeError("search unavailable")

    monkeypatch.setattr(alert_tasks, "alert_recommend", broken)
    call_command("worker", "--until-idle")

    assert Alert.objects.get().recommendation_state == RecommendationState.PENDING
    job = ProcrastinateJob.objects.get()
    assert job.status == "todo" and job.attempts == 1 and job.scheduled_at is not None


def test_a_resolve_notification_records_the_outcome_of_each_presentation(client, library):
    receiver = AlertReceiverFactory()
    firing = fixture("alertmanager_firing.json")
    firing["alerts"] = firing["alerts"][:1]
    assert post(client, firing, token=receiver.token).status_code == 200
    call_command("worker", "--until-idle")
    alert = Alert.objects.get()
    engineer = UserFactory()
    client.force_login(engineer)
    assert client.get("/alerts/").status_code == 200  # the page presents the alert's runbooks (audited once)
    assert AlertPresentation.objects.filter(alert=alert, user=engineer).exists()

    resolved = fixture("alertmanager_resolved.json")
    resolved["alerts"] = [a for a in resolved["alerts"] if a["fingerprint"] == alert.fingerprint]
    assert post(client, resolved, token=receiver.token).status_code == 200
    assert post(client, resolved, token=receiver.token).status_code == 200  # Alertmanager repeats it

    alert.refresh_from_db()
    events = RunbookInteractionEvent.objects.filter(event_type=EventType.ALERT_RESOLVED)
    assert [(event.user_id, event.event_timestamp) for event in events] == [(engineer.pk, alert.ends_at)]
