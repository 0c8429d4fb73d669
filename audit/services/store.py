"""The append-only store: the writers of audit logs and interaction events, and its one delete path."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.details import ActionDetails
from audit.models import AuditLog, EventSource, EventType, RunbookInteractionEvent
from audit.sql import audit_log_events_purge


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


def interaction_event_record(
    *, event: EventInput, event_timestamp=None, savepoint: bool = True
) -> RunbookInteractionEvent:
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
        with transaction.atomic(savepoint=savepoint):
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
    details: ActionDetails,
    source: str = EventSource.DIRECT,
    llm_provider: str = "",
    llm_model: str = "",
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    latency_ms: int | None = None,
    degraded: bool = False,
    error: str = "",
    page_context: dict | None = None,
    created_at: dt.datetime | None = None,
) -> AuditLog:
    """Write the audit log of an answer and one ``presented`` event per solution, with its rank.

    ``created_at`` defaults to now; imports and tests of past days pass it (the events get the same time).
    """
    audit_log = AuditLog.objects.create(
        user=user,
        session=session,
        created_at=created_at or timezone.now(),
        query=query,
        response=response,
        ai_action_details=details.to_json(),
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
    for solution in details.runbook_solutions:
        interaction_event_record(
            event=EventInput(
                runbook_id=solution.id,
                event_type=EventType.PRESENTED,
                user_id=user.pk,
                session_id=session.pk if session else None,
                audit_log_id=audit_log.pk,
                rank=solution.rank,
                source=source,
                experiment=details.experiment,
                variant=details.variant,
                page_context=page_context or {},
            ),
            event_timestamp=audit_log.created_at,
            # Fresh ids inside this function's own transaction: a clash is impossible, so no savepoint.
            savepoint=False,
        )
    return audit_log


@transaction.atomic
def audit_logs_purge(*, audit_log_ids: Iterable[uuid.UUID | str]) -> int:
    """Delete these audit logs with their events and event-id claims; returns the audit logs deleted.

    The ONE delete path of the append-only store, and it exists for one caller: ``verify_phase2`` run
    over HTTP against a deployment cannot roll its answers back like an in-process run does, so it
    removes what it created (aihelper/ops/verification.py, ``Verifier.cleanup``). Nothing else deletes
    events; old months go only as whole partitions (audit.services.partitions).

    Events and their claims go in one named statement (audit.sql.AUDIT_LOG_EVENTS_PURGE_SQL); the
    claims have to go too, or the ids stay taken. The audit logs go through the ORM on purpose: chat
    messages and runbook executions of higher layers point at them with ``SET_NULL`` applied by Django,
    and audit cannot name those tables.
    """
    ids = list(dict.fromkeys(uuid.UUID(str(audit_log_id)) for audit_log_id in audit_log_ids))
    if not ids:
        return 0
    audit_log_events_purge(ids)
    _, deleted = AuditLog.objects.filter(pk__in=ids).delete()
    return deleted.get(AuditLog._meta.label, 0)
