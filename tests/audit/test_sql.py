"""Each statement of audit/sql.py on data whose answer is known."""

import datetime as dt
import threading
import time
import uuid

import pytest
from django.db import connection, transaction
from psycopg import sql

from audit.models import AuditLog, EventIdClaim, EventType, RunbookInteractionEvent
from audit.services.store import EventInput, interaction_event_record
from audit.sql import (
    EVENTS_TABLE,
    PARTITION_DETACH_SQL,
    PARTITION_DROP_SQL,
    JsonbAppend,
    ListLength,
    StoredEntry,
    advisory_xact_lock,
    audit_log_events_purge,
    click_record_call,
    default_partition_months,
    event_id_claims_delete_before,
    monthly_partitions,
    partition_detach_and_drop,
    partition_ensure,
    partitions_ensure_around,
)
from tests.aihelper.factories import ChatSessionFactory
from tests.audit.factories import AuditLogFactory, interaction_event
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db


def _event_at(runbook, at: dt.datetime, **fields) -> RunbookInteractionEvent:
    return interaction_event_record(
        event=EventInput(runbook_id=runbook.pk, event_type=EventType.PRESENTED, **fields), event_timestamp=at
    )


def _partition_of(event_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM runbook_interaction_events WHERE event_id = %s", [event_id]
        )
        return cursor.fetchone()[0]


def _table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


# --- partitions -----------------------------------------------------------------------------------


def test_partitions_ensure_around_creates_last_month_to_months_ahead_and_moves_default_rows():
    event = _event_at(RunbookFactory(), dt.datetime(2001, 6, 15, 12, 0, tzinfo=dt.UTC))
    assert _partition_of(event.event_id) == "runbook_interaction_events_default"

    created = partitions_ensure_around(month=dt.date(2001, 6, 1), months_ahead=1)

    assert created == [("2001-05", 0), ("2001-06", 1), ("2001-07", 0)]
    assert _partition_of(event.event_id) == "runbook_interaction_events_y2001m06"
    assert partitions_ensure_around(month=dt.date(2001, 6, 1), months_ahead=1) == [
        ("2001-05", -1), ("2001-06", -1), ("2001-07", -1)
    ]


def test_default_partition_months_are_the_utc_months_of_the_rows_in_default():
    runbook = RunbookFactory()
    _event_at(runbook, dt.datetime(1999, 3, 10, tzinfo=dt.UTC))
    _event_at(runbook, dt.datetime(1999, 3, 20, tzinfo=dt.UTC))
    # 00:30 on 1 January in UTC+1 is still December in UTC.
    _event_at(runbook, dt.datetime(1999, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    _event_at(runbook, dt.datetime.now(dt.UTC))  # lands in this month's partition, not DEFAULT

    assert default_partition_months() == [dt.date(1998, 12, 1), dt.date(1999, 3, 1)]


def test_partition_ensure_moves_the_months_rows_once_then_reports_it_exists():
    runbook = RunbookFactory()
    march = [_event_at(runbook, dt.datetime(1999, 3, day, tzinfo=dt.UTC)) for day in (1, 31)]
    april = _event_at(runbook, dt.datetime(1999, 4, 1, tzinfo=dt.UTC))

    assert partition_ensure(dt.date(1999, 3, 1)) == 2
    assert partition_ensure(dt.date(1999, 3, 1)) == -1
    assert {_partition_of(event.event_id) for event in march} == {"runbook_interaction_events_y1999m03"}
    assert _partition_of(april.event_id) == "runbook_interaction_events_default"


def test_monthly_partitions_lists_the_attached_months_in_order_without_default():
    partition_ensure(dt.date(1999, 4, 1))
    partition_ensure(dt.date(1999, 3, 1))
    now = dt.datetime.now(dt.UTC)

    names = monthly_partitions()

    assert names == sorted(names)
    assert {"runbook_interaction_events_y1999m03", "runbook_interaction_events_y1999m04"} <= set(names)
    assert f"runbook_interaction_events_y{now:%Y}m{now:%m}" in names  # made by migration 0002
    assert "runbook_interaction_events_default" not in names
    assert all(name.startswith(f"{EVENTS_TABLE}_y") for name in names)


def test_partition_detach_and_drop_removes_the_partition_and_its_events_only():
    runbook = RunbookFactory()
    old = _event_at(runbook, dt.datetime(1999, 3, 10, tzinfo=dt.UTC))
    kept = _event_at(runbook, dt.datetime(1999, 4, 10, tzinfo=dt.UTC))
    partition_ensure(dt.date(1999, 3, 1))
    partition_ensure(dt.date(1999, 4, 1))

    partition_detach_and_drop("runbook_interaction_events_y1999m03")

    assert not _table_exists("runbook_interaction_events_y1999m03")
    assert "runbook_interaction_events_y1999m03" not in monthly_partitions()
    assert not RunbookInteractionEvent.objects.filter(event_id=old.event_id).exists()
    assert _partition_of(kept.event_id) == "runbook_interaction_events_y1999m04"


def test_partition_names_are_quoted_identifiers_never_spliced_text():
    name = 'x"; DROP TABLE runbooks; --'
    detach = PARTITION_DETACH_SQL.format(parent=sql.Identifier(EVENTS_TABLE), partition=sql.Identifier(name))
    drop = PARTITION_DROP_SQL.format(partition=sql.Identifier(name))
    with connection.cursor():
        assert detach.as_string(connection.connection) == (
            'ALTER TABLE "runbook_interaction_events" DETACH PARTITION "x""; DROP TABLE runbooks; --"'
        )
        assert drop.as_string(connection.connection) == 'DROP TABLE "x""; DROP TABLE runbooks; --"'


def test_event_id_claims_delete_before_removes_older_claims_only():
    runbook = RunbookFactory()
    old = _event_at(runbook, dt.datetime(1999, 12, 31, 23, 59, tzinfo=dt.UTC))
    boundary = _event_at(runbook, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    recent = _event_at(runbook, dt.datetime.now(dt.UTC))

    assert event_id_claims_delete_before(dt.date(2000, 1, 1)) == 1

    claims = set(EventIdClaim.objects.values_list("event_id", flat=True))
    assert claims == {boundary.event_id, recent.event_id}
    assert old.event_id not in claims


# --- purge ----------------------------------------------------------------------------------------


def test_audit_log_events_purge_deletes_the_logs_events_and_their_claims_only():
    runbooks = [RunbookFactory(), RunbookFactory()]
    purged = AuditLogFactory(presented=runbooks)  # two presented events
    interaction_event(audit_log=purged, runbook=runbooks[0], event_type=EventType.CLICKED_LINK)
    other = AuditLogFactory(presented=runbooks[:1])
    loose = _event_at(runbooks[0], dt.datetime.now(dt.UTC))  # no audit log
    kept_ids = {loose.event_id} | set(
        RunbookInteractionEvent.objects.filter(audit_log_id=other.pk).values_list("event_id", flat=True)
    )

    assert audit_log_events_purge([purged.pk]) == (3, 3)

    assert set(RunbookInteractionEvent.objects.values_list("event_id", flat=True)) == kept_ids
    assert set(EventIdClaim.objects.values_list("event_id", flat=True)) == kept_ids
    assert AuditLog.objects.filter(pk=purged.pk).exists()  # the audit log itself is the service's job
    assert audit_log_events_purge([uuid.uuid4()]) == (0, 0)


# --- click function -------------------------------------------------------------------------------


def _call(audit_log, runbook, **overrides) -> dict:
    arguments = {
        "user_id": audit_log.user_id,
        "audit_log_id": audit_log.pk,
        "session_id": None,
        "solution_id": str(runbook.pk),
        "solution_type": "runbook",
        "user_action": "clicked_link",
        "client_rank": None,
        "event_id": uuid.uuid4(),
        "source": "chat_page",
        "event_type": EventType.CLICKED_LINK,
    }
    return click_record_call(**{**arguments, **overrides})


def test_click_record_call_returns_each_status_and_writes_only_when_created(other_user):
    runbooks = [RunbookFactory(), RunbookFactory()]
    session = ChatSessionFactory()
    audit_log = AuditLogFactory(user=session.user, session=session, presented=runbooks)
    event_id = uuid.uuid4()

    created = _call(audit_log, runbooks[1], event_id=event_id, session_id=session.pk, client_rank=2)
    assert created["status"] == "created"
    assert (created["click_count"], created["rank"]) == (1, 2)
    assert float(created["time_to_decision_seconds"]) >= 0

    duplicate = _call(audit_log, runbooks[0], event_id=event_id)
    assert duplicate["status"] == "duplicate"
    assert (duplicate["click_count"], duplicate["rank"]) == (1, 2)  # the stored click, not this one

    assert _call(audit_log, runbooks[0], user_id=other_user.pk) == {"status": "not_found"}
    assert _call(audit_log, runbooks[0], audit_log_id=uuid.uuid4()) == {"status": "not_found"}
    assert _call(audit_log, runbooks[0], session_id=ChatSessionFactory(user=session.user).pk) == {
        "status": "session_mismatch"
    }
    assert _call(audit_log, RunbookFactory()) == {"status": "not_presented"}
    assert _call(audit_log, runbooks[0], client_rank=2) == {"status": "rank_mismatch", "rank": 1}

    audit_log.refresh_from_db()
    clicks = audit_log.user_modifications["clicks"]
    assert [(click["event_id"], click["rank"], click["source"]) for click in clicks] == [
        (str(event_id), 2, "chat_page")
    ]
    assert audit_log.user_modifications["solution_chosen_id"] == str(runbooks[1].pk)
    event = RunbookInteractionEvent.objects.get(event_type=EventType.CLICKED_LINK)
    assert (event.event_id, event.runbook_id, event.rank, event.session_id) == (event_id, runbooks[1].pk, 2, session.pk)


# --- advisory lock --------------------------------------------------------------------------------


def _hold_then_take(first_key: str, second_key: str, hold_seconds: float = 0.5) -> tuple[float, float]:
    """Thread A holds ``first_key`` for ``hold_seconds``; thread B, started once A holds it, takes
    ``second_key``. Returns (when A was about to release, when B got its lock). Both use their own
    connections and transactions, so the test's transaction is not involved."""
    held = threading.Event()
    times: dict[str, float] = {}
    errors: list = []

    def first() -> None:
        try:
            with transaction.atomic():
                advisory_xact_lock(first_key)
                held.set()
                time.sleep(hold_seconds)
                times["released"] = time.monotonic()
        except Exception as exc:  # a dead thread must fail the test, not vanish
            errors.append(repr(exc))
            held.set()
        finally:
            connection.close()

    def second() -> None:
        try:
            held.wait(timeout=10)
            with transaction.atomic():
                advisory_xact_lock(second_key)
                times["acquired"] = time.monotonic()
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    return times["released"], times["acquired"]


def test_advisory_xact_lock_makes_a_second_holder_of_the_same_key_wait_for_the_commit():
    released, acquired = _hold_then_take("view:1:a:b", "view:1:a:b")
    assert acquired >= released


def test_advisory_xact_lock_on_another_key_does_not_wait():
    released, acquired = _hold_then_take("view:1:a:b", "view:1:a:c")
    assert acquired < released


# --- JSON lists in user_modifications ---------------------------------------------------------------


def _modifications(audit_log) -> dict:
    return AuditLog.objects.get(pk=audit_log.pk).user_modifications


def test_jsonb_append_appends_to_the_list_under_key_and_sets_replace_keys():
    audit_log = AuditLogFactory()
    assert _modifications(audit_log) == {"clicks": []}
    rows = AuditLog.objects.filter(pk=audit_log.pk)

    rows.update(user_modifications=JsonbAppend(key="feedback", item={"n": 1, "text": "it's"}))
    rows.update(user_modifications=JsonbAppend(key="feedback", item={"n": 2}, replace={"latest": 2}))
    rows.update(user_modifications=JsonbAppend(key="clicks", item={"at": dt.datetime(2024, 5, 1, tzinfo=dt.UTC)}))

    assert _modifications(audit_log) == {
        "clicks": [{"at": "2024-05-01T00:00:00Z"}],
        "feedback": [{"n": 1, "text": "it's"}, {"n": 2}],
        "latest": 2,
    }


def test_list_length_counts_the_list_under_key_and_zero_when_absent():
    audit_log = AuditLogFactory()
    rows = AuditLog.objects.filter(pk=audit_log.pk)
    for n in range(3):
        rows.update(user_modifications=JsonbAppend(key="feedback", item={"n": n}))

    counted = rows.annotate(
        feedback=ListLength("feedback"), clicks=ListLength("clicks"), missing=ListLength("missing")
    ).get()

    assert (counted.feedback, counted.clicks, counted.missing) == (3, 0, 0)


def test_stored_entry_finds_the_entry_with_the_event_id_or_none():
    audit_log = AuditLogFactory()
    rows = AuditLog.objects.filter(pk=audit_log.pk)
    first, second = uuid.uuid4(), uuid.uuid4()
    for event_id, rating in ((first, "up"), (second, "down")):
        rows.update(user_modifications=JsonbAppend(key="feedback", item={"event_id": str(event_id), "rating": rating}))

    def found(key: str, event_id: uuid.UUID):
        return rows.annotate(entry=StoredEntry(key, event_id)).get().entry

    assert found("feedback", second) == {"event_id": str(second), "rating": "down"}
    assert found("feedback", uuid.uuid4()) is None
    assert found("clicks", first) is None
