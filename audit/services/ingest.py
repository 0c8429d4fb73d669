"""Events that clients report: batches from the events endpoint and runbook pages opened from an answer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from aihelper.core.redaction import redact_json
from audit.models import EventIdClaim, EventSource, EventType, RunbookInteractionEvent
from audit.selectors import audit_log_details, audit_logs_for_user, presented_solution
from audit.services.store import EventInput, interaction_event_record
from audit.sql import advisory_xact_lock

# Event types a client may send to the ingestion endpoint; the server writes the others itself.
CLIENT_EVENT_TYPES = (
    EventType.CLICKED_LINK,
    EventType.VIEWED_DETAIL,
    EventType.FEEDBACK_POSITIVE,
    EventType.FEEDBACK_NEGATIVE,
)
CLIENT_CLOCK_FUTURE_TOLERANCE = dt.timedelta(minutes=5)
CLIENT_CLOCK_PAST_TOLERANCE = dt.timedelta(days=1)


def clamp_client_timestamp(value, *, now=None) -> tuple[object, bool]:
    """Client clocks lie: keep timestamps within [now - 1 day, now + 5 min], flagging clamps."""
    now = now or timezone.now()
    if value is None:
        return None, False
    if value > now + CLIENT_CLOCK_FUTURE_TOLERANCE:
        return now, True
    if value < now - CLIENT_CLOCK_PAST_TOLERANCE:
        return now - CLIENT_CLOCK_PAST_TOLERANCE, True
    return value, False


@dataclass
class IngestReport:
    accepted: list[str]
    duplicates: list[str]
    rejected: list[dict]


def events_ingest(*, user, events: Sequence[dict], rejected: list[dict] | None = None) -> IngestReport:
    """Store already-validated client events; duplicates are acknowledged, never stored twice.

    Ids already stored (or repeated in the batch) are sorted out first, then the rest go in with one
    bulk INSERT. If that fails (a concurrent request stored one of the ids meanwhile) each event is
    retried in its own savepoint, so one conflict never loses the others.
    """
    report = IngestReport(accepted=[], duplicates=[], rejected=list(rejected or []))
    now = timezone.now()
    rows: list[RunbookInteractionEvent] = []
    seen: set = set()
    for item in events:
        if item["event_id"] in seen:
            report.duplicates.append(str(item["event_id"]))
            continue
        seen.add(item["event_id"])
        client_timestamp, clamped = clamp_client_timestamp(item.get("client_timestamp"), now=now)
        # Client-supplied JSON is text from outside: secrets in it are replaced before it is stored.
        page_context, context_kinds = redact_json(item.get("page_context") or {})
        metadata, metadata_kinds = redact_json(dict(item.get("metadata") or {}))
        if context_kinds or metadata_kinds:
            metadata["redactions"] = list(context_kinds + metadata_kinds)
        if clamped:
            metadata["client_timestamp_clamped"] = True
            metadata["client_timestamp_original"] = item["client_timestamp"].isoformat()
        rows.append(
            RunbookInteractionEvent(
                event_id=item["event_id"],
                event_timestamp=now,
                user_id=user.pk,
                session_id=item.get("session_id"),
                audit_log_id=item.get("audit_log_id"),
                runbook_id=item["runbook_id"],
                event_type=item["event_type"],
                rank=item.get("rank"),
                source=item.get("source") or EventSource.DIRECT,
                client_timestamp=client_timestamp,
                experiment=item.get("experiment", ""),
                variant=item.get("variant", ""),
                page_context=page_context,
                metadata=metadata,
            )
        )
    ids = [row.event_id for row in rows]
    known = set(EventIdClaim.objects.filter(event_id__in=ids).values_list("event_id", flat=True))
    report.duplicates.extend(str(row.event_id) for row in rows if row.event_id in known)
    fresh = [row for row in rows if row.event_id not in known]
    try:
        with transaction.atomic():
            RunbookInteractionEvent.objects.bulk_create(fresh)
        report.accepted.extend(str(row.event_id) for row in fresh)
    except IntegrityError:
        for row in fresh:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                report.duplicates.append(str(row.event_id))
                continue
            report.accepted.append(str(row.event_id))
    return report


def detail_view_record(*, user, runbook_id, audit_log_id=None, source: str = EventSource.DIRECT,
                       window_seconds: int = 300) -> RunbookInteractionEvent | None:
    """Record ``viewed_detail`` when a runbook page is opened from a recommendation.

    Only for the user's own audit log that presented the runbook (rank taken from it); repeated
    views of the same recommendation within ``window_seconds`` are not recorded again.
    """
    audit_log = audit_logs_for_user(user).filter(pk=audit_log_id).first() if audit_log_id else None
    if audit_log is None:
        return None
    solution = presented_solution(audit_log, solution_id=str(runbook_id), solution_type="runbook")
    if solution is None:
        return None
    since = timezone.now() - dt.timedelta(seconds=window_seconds)
    with transaction.atomic():
        # One view per (user, recommendation, runbook) per window, even for concurrent requests.
        advisory_xact_lock(f"view:{user.pk}:{audit_log.pk}:{runbook_id}")
        recent = RunbookInteractionEvent.objects.filter(
            event_timestamp__gte=since,
            event_type=EventType.VIEWED_DETAIL,
            audit_log_id=audit_log.pk,
            runbook_id=runbook_id,
            user_id=user.pk,
        ).exists()
        if recent:
            return None
        details = audit_log_details(audit_log)
        return interaction_event_record(
            event=EventInput(
                runbook_id=runbook_id,
                event_type=EventType.VIEWED_DETAIL,
                user_id=user.pk,
                session_id=audit_log.session_id,
                audit_log_id=audit_log.pk,
                rank=solution.rank,
                source=source if source in EventSource.values else EventSource.DIRECT,
                experiment=details.experiment,
                variant=details.variant,
            )
        )
