import datetime as dt
import uuid

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import EventType, RunbookInteractionEvent
from audit.services import DuplicateEvent, EventInput, event_partitions_ensure, interaction_event_record
from tests.factories import RunbookFactory

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
