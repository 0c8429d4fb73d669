"""An alert's resolution as the outcome of its presentations (alerts/outcomes.py), and executions started
from an alert's cards remembering the alert."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction

from alerts.outcomes import alert_for_execution, alert_resolutions_record, alert_resolved_event_id
from analytics.sql.learning import feedback_outcome_counts
from audit.models import EventIdClaim, EventSource, EventType, RunbookInteractionEvent
from runbooks.models import RunbookExecution
from tests.alerts.outcome_rows import alert_presentation, recommended_alert
from tests.factories import UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

STARTS = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
RESOLVED = STARTS + dt.timedelta(minutes=45)


@pytest.fixture
def runbooks(db):
    return [RunbookFactory(), RunbookFactory()]


def resolved_events():
    return RunbookInteractionEvent.objects.filter(event_type=EventType.ALERT_RESOLVED).order_by("user_id")


def test_each_presentation_gets_one_resolved_event_with_the_alerts_start(user, other_user, runbooks):
    alert = recommended_alert(runbooks=runbooks, starts_at=STARTS)
    mine = alert_presentation(alert=alert, user=user, runbooks=runbooks)
    theirs = alert_presentation(alert=alert, user=other_user, runbooks=runbooks[::-1])
    assert alert_resolutions_record(alert_ids=[alert.pk], resolved_at=RESOLVED) == 2
    events = list(resolved_events())
    assert [(e.user_id, e.audit_log_id, e.runbook_id, e.rank, e.source) for e in events] == [
        (user.pk, mine.audit_log_id, runbooks[0].pk, 1, EventSource.ALERT),
        (other_user.pk, theirs.audit_log_id, runbooks[1].pk, 1, EventSource.ALERT),
    ]
    for event in events:
        assert event.event_timestamp == RESOLVED
        assert event.event_id == alert_resolved_event_id(event.audit_log_id)
        assert event.metadata == {
            "alert_id": alert.pk,
            "starts_at": STARTS.isoformat(),
            "resolved_at": RESOLVED.isoformat(),
        }


def test_a_repeated_resolution_appends_nothing(user, runbooks):
    alert = recommended_alert(runbooks=runbooks, starts_at=STARTS)
    alert_presentation(alert=alert, user=user, runbooks=runbooks)
    assert alert_resolutions_record(alert_ids=[alert.pk], resolved_at=RESOLVED) == 1
    with transaction.atomic():
        # The intake's transaction stays usable after the duplicate (a savepoint per insert).
        later = RESOLVED + dt.timedelta(minutes=5)
        assert alert_resolutions_record(alert_ids=[alert.pk, alert.pk], resolved_at=later) == 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    assert resolved_events().count() == 1
    assert resolved_events().get().event_timestamp == RESOLVED
    assert EventIdClaim.objects.filter(event_id=alert_resolved_event_id(resolved_events().get().audit_log_id)).exists()


def test_a_presentation_made_after_the_first_resolution_is_recorded_by_the_next(user, other_user, runbooks):
    alert = recommended_alert(runbooks=runbooks, starts_at=STARTS)
    alert_presentation(alert=alert, user=user, runbooks=runbooks)
    assert alert_resolutions_record(alert_ids=[alert.pk], resolved_at=RESOLVED) == 1
    alert_presentation(alert=alert, user=other_user, runbooks=runbooks)
    assert alert_resolutions_record(alert_ids=[alert.pk], resolved_at=RESOLVED) == 1
    assert resolved_events().count() == 2


def test_only_the_given_alerts_and_presentations_with_a_runbook_count(user, other_user, runbooks):
    resolved = recommended_alert(runbooks=runbooks, starts_at=STARTS)
    still_firing = recommended_alert(runbooks=runbooks, starts_at=STARTS)
    alert_presentation(alert=resolved, user=user, runbooks=runbooks)
    alert_presentation(alert=resolved, user=other_user, runbooks=[])  # nothing the user may see: no runbook
    alert_presentation(alert=still_firing, user=user, runbooks=runbooks)
    assert alert_resolutions_record(alert_ids=[resolved.pk], resolved_at=RESOLVED) == 1
    assert [e.user_id for e in resolved_events()] == [user.pk]
    assert alert_resolutions_record(alert_ids=[], resolved_at=RESOLVED) == 0


def test_resolution_events_are_not_funnel_steps_or_runbook_interactions(user, runbooks):
    """The learning read of "last interaction" skips them (a resolve is not an engineer using the runbook)."""
    alert = recommended_alert(runbooks=runbooks, starts_at=STARTS)
    alert_presentation(alert=alert, user=user, runbooks=runbooks, created_at=STARTS)
    alert_resolutions_record(alert_ids=[alert.pk], resolved_at=RESOLVED)
    counts = feedback_outcome_counts(since=STARTS - dt.timedelta(days=1), until=RESOLVED + dt.timedelta(days=1))
    assert counts == []


def test_an_execution_started_from_an_alert_card_remembers_the_alert(client, user, runbooks):
    alert = recommended_alert(runbooks=runbooks, starts_at=STARTS)
    presentation = alert_presentation(alert=alert, user=user, runbooks=runbooks)
    client.force_login(user)
    response = client.post(
        f"/runbooks/{runbooks[1].pk}/executions/",
        {"from": str(presentation.audit_log_id), "source": "alert"},
    )
    assert response.status_code == 302, response.content
    execution = RunbookExecution.objects.get(user=user)
    assert (execution.audit_log_id, execution.source) == (presentation.audit_log_id, "alert")
    started = RunbookInteractionEvent.objects.get(event_type=EventType.STARTED_EXECUTION)
    assert (started.audit_log_id, started.rank, started.source) == (presentation.audit_log_id, 2, "alert")
    assert alert_for_execution(execution) == alert


def test_an_execution_not_started_from_an_alert_has_none(client, user, runbooks):
    someone = UserFactory(username="someone")
    alert = recommended_alert(runbooks=runbooks, starts_at=STARTS)
    presentation = alert_presentation(alert=alert, user=someone, runbooks=runbooks)
    client.force_login(user)
    # Someone else's presentation is not the user's recommendation: the run is not linked to it.
    client.post(f"/runbooks/{runbooks[0].pk}/executions/", {"from": str(presentation.audit_log_id)})
    execution = RunbookExecution.objects.get(user=user)
    assert execution.audit_log_id is None
    assert alert_for_execution(execution) is None
