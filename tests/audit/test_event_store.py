import datetime as dt
import uuid

import pytest
from django.db import DatabaseError, connection, transaction

from aihelper.chat.models import ChatMessage
from audit.models import AuditLog, EventIdClaim, EventType, RunbookInteractionEvent
from audit.services.partitions import event_partitions_ensure
from audit.services.store import DuplicateEvent, EventInput, audit_logs_purge, interaction_event_record
from tests.aihelper.factories import ChatMessageFactory
from tests.audit.factories import AuditLogFactory, interaction_event
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db


def _partition_of(event_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM runbook_interaction_events WHERE event_id = %s", [event_id]
        )
        return cursor.fetchone()[0]


def test_event_lands_in_its_monthly_partition(user):
    runbook = RunbookFactory()
    now = dt.datetime.now(dt.UTC)
    event = interaction_event_record(
        event=EventInput(runbook_id=runbook.pk, event_type=EventType.CLICKED_LINK, user_id=user.pk, rank=1)
    )
    assert _partition_of(event.event_id) == f"runbook_interaction_events_y{now:%Y}m{now:%m}"


def test_event_far_in_the_past_lands_in_default_and_maintenance_moves_it(user):
    runbook = RunbookFactory()
    old = dt.datetime(2019, 5, 17, 12, 0, tzinfo=dt.UTC)
    event = interaction_event_record(
        event=EventInput(runbook_id=runbook.pk, event_type=EventType.PRESENTED, rank=2), event_timestamp=old
    )
    assert _partition_of(event.event_id) == "runbook_interaction_events_default"
    created = event_partitions_ensure(months_ahead=1)
    assert created.get("2019-05") == 1
    assert _partition_of(event.event_id) == "runbook_interaction_events_y2019m05"
    assert RunbookInteractionEvent.objects.filter(event_id=event.event_id).count() == 1


def test_duplicate_event_id_is_refused_even_with_another_timestamp(user):
    runbook = RunbookFactory()
    event_id = uuid.uuid4()
    interaction_event_record(event=EventInput(runbook_id=runbook.pk, event_type="clicked_link", event_id=event_id))
    with pytest.raises(DuplicateEvent):
        interaction_event_record(
            event=EventInput(runbook_id=runbook.pk, event_type="viewed_detail", event_id=event_id),
            event_timestamp=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        )
    assert RunbookInteractionEvent.objects.filter(event_id=event_id).count() == 1
    assert RunbookInteractionEvent.objects.get(event_id=event_id).event_type == "clicked_link"


def test_events_cannot_be_updated(user):
    runbook = RunbookFactory()
    event = interaction_event_record(event=EventInput(runbook_id=runbook.pk, event_type="clicked_link", rank=1))
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        RunbookInteractionEvent.objects.filter(event_id=event.event_id).update(rank=3)
    assert RunbookInteractionEvent.objects.get(event_id=event.event_id).rank == 1


def test_unknown_event_type_is_refused():
    runbook = RunbookFactory()
    with pytest.raises(ValueError, match="unknown event_type"):
        interaction_event_record(event=EventInput(runbook_id=runbook.pk, event_type="liked"))


def test_purge_removes_exactly_the_given_audit_logs_with_their_events_and_claims(user, other_user):
    runbooks = [RunbookFactory(), RunbookFactory()]
    purged = [AuditLogFactory(user=user, presented=runbooks), AuditLogFactory(user=other_user, presented=runbooks[:1])]
    interaction_event(audit_log=purged[0], runbook=runbooks[0], event_type=EventType.CLICKED_LINK)
    kept = AuditLogFactory(user=user, presented=runbooks)
    interaction_event(audit_log=kept, runbook=runbooks[1], event_type=EventType.CLICKED_LINK)
    loose = interaction_event_record(event=EventInput(runbook_id=runbooks[0].pk, event_type="viewed_detail"))
    message = ChatMessageFactory(audit_log=purged[0])
    kept_events = {loose.event_id} | set(
        RunbookInteractionEvent.objects.filter(audit_log_id=kept.pk).values_list("event_id", flat=True)
    )
    assert len(kept_events) == 4

    # Ids as the verification run has them (strings), one repeated.
    assert audit_logs_purge(audit_log_ids=[str(purged[0].pk), purged[1].pk, str(purged[0].pk)]) == 2

    assert list(AuditLog.objects.values_list("pk", flat=True)) == [kept.pk]
    assert set(RunbookInteractionEvent.objects.values_list("event_id", flat=True)) == kept_events
    assert set(EventIdClaim.objects.values_list("event_id", flat=True)) == kept_events
    message.refresh_from_db()
    assert message.audit_log_id is None  # a higher layer's reference is nulled, its row kept
    assert ChatMessage.objects.count() == 1
    assert audit_logs_purge(audit_log_ids=[]) == 0
