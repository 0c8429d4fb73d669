"""The only writers of audit logs and interaction events (append-only)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from psycopg import sql

from audit.models import AuditLog, EventSource, EventType, RunbookInteractionEvent


class DuplicateEvent(Exception):
    """The event_id was already recorded; the original is kept."""


@dataclass(frozen=True)
class EventInput:
    runbook_id: uuid.UUID | str
    event_type: str
    user_id: int | None = None
    session_id: uuid.UUID | str | None = None
    audit_log_id: uuid.UUID | str | None = None
    rank: int | None = None
    source: str = EventSource.DIRECT
    event_id: uuid.UUID | None = None
    client_timestamp: object = None
    experiment: str = ""
    variant: str = ""
    page_context: dict | None = None
    metadata: dict | None = None


def interaction_event_record(*, event: EventInput, event_timestamp=None) -> RunbookInteractionEvent:
    """Append one event. Raises DuplicateEvent if its event_id is already stored.

    Runs in a savepoint so a duplicate does not poison the caller's transaction.
    """
    if event.event_type not in EventType.values:
        raise ValueError(f"unknown event_type {event.event_type!r}")
    row = RunbookInteractionEvent(
        event_id=event.event_id or uuid.uuid4(),
        event_timestamp=event_timestamp or timezone.now(),
        user_id=event.user_id,
        session_id=event.session_id,
        audit_log_id=event.audit_log_id,
        runbook_id=event.runbook_id,
        event_type=event.event_type,
        rank=event.rank,
        source=event.source,
        client_timestamp=event.client_timestamp,
        experiment=event.experiment,
        variant=event.variant,
        page_context=event.page_context or {},
        metadata=event.metadata or {},
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError as exc:
        if "runbook_interaction_event_ids_pkey" in str(exc) or "already recorded" in str(exc):
            raise DuplicateEvent(str(row.event_id)) from None
        raise
    return row


@transaction.atomic
def audit_log_create(
    *,
    user,
    session,
    query: str,
    response: str,
    ai_action_details: dict,
    source: str = EventSource.DIRECT,
    llm_provider: str = "",
    llm_model: str = "",
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    latency_ms: int | None = None,
    degraded: bool = False,
    error: str = "",
    page_context: dict | None = None,
) -> AuditLog:
    """Write the audit log of an answer and one ``presented`` event per solution, with its rank."""
    audit_log = AuditLog.objects.create(
        user=user,
        session=session,
        created_at=timezone.now(),
        query=query,
        response=response,
        ai_action_details=ai_action_details,
        user_modifications={"clicks": []},
        source=source,
        llm_provider=llm_provider,
        llm_model=llm_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=latency_ms,
        degraded=degraded,
        error=error,
    )
    solutions: Sequence[dict] = ai_action_details.get("solutions_presented", [])
    for solution in solutions:
        if solution.get("type") != "runbook":
            continue
        interaction_event_record(
            event=EventInput(
                runbook_id=solution["id"],
                event_type=EventType.PRESENTED,
                user_id=user.pk,
                session_id=session.pk if session else None,
                audit_log_id=audit_log.pk,
                rank=solution["rank"],
                source=source,
                experiment=ai_action_details.get("experiment") or "",
                variant=ai_action_details.get("variant") or "",
                page_context=page_context or {},
            ),
            event_timestamp=audit_log.created_at,
        )
    return audit_log


def event_partitions_ensure(*, months_ahead: int = 3) -> dict[str, int]:
    """Create monthly partitions from last month to ``months_ahead``; move DEFAULT rows into them.

    Returns {partition month: rows moved} for the partitions created now.
    """
    from django.db import connection

    created: dict[str, int] = {}
    today = timezone.now().date().replace(day=1)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_char(month, 'YYYY-MM'), runbook_events_ensure_partition(month::date) FROM ("
            " SELECT (date_trunc('month', %s::date) + make_interval(months => m))::date AS month"
            " FROM generate_series(-1, %s) AS m) months",
            [today, months_ahead],
        )
        for month, moved in cursor.fetchall():
            if moved >= 0:
                created[month] = moved
        # Months before last month that have rows stuck in DEFAULT get their partition too.
        cursor.execute(
            "SELECT DISTINCT date_trunc('month', event_timestamp AT TIME ZONE 'UTC')::date"
            " FROM runbook_interaction_events_default"
        )
        for (month,) in cursor.fetchall():
            cursor.execute("SELECT runbook_events_ensure_partition(%s::date)", [month])
            moved = cursor.fetchone()[0]
            if moved >= 0:
                created[month.strftime("%Y-%m")] = moved
    return created


def event_partitions_drop_older_than(*, months: int) -> list[str]:
    """Drop monthly partitions that end before the start of the month ``months`` ago."""
    from django.db import connection

    cutoff = timezone.now().date().replace(day=1)
    for _ in range(months):
        cutoff = (cutoff.replace(day=1) - timezone.timedelta(days=1)).replace(day=1)
    dropped: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE p.relname = 'runbook_interaction_events' AND c.relname ~ '_y[0-9]{4}m[0-9]{2}$'"
        )
        for (name,) in cursor.fetchall():
            year, month = int(name[-7:-3]), int(name[-2:])
            if (year, month) < (cutoff.year, cutoff.month):
                table = sql.Identifier(name).as_string(connection.connection)
                cursor.execute(f"ALTER TABLE runbook_interaction_events DETACH PARTITION {table}")  # noqa: S608
                cursor.execute(f"DROP TABLE {table}")  # noqa: S608
                dropped.append(name)
        cursor.execute("DELETE FROM runbook_interaction_event_ids WHERE event_timestamp < %s", [cutoff])
    return sorted(dropped)
