"""Events that clients report: batches from the events endpoint and runbook pages opened from an answer."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
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


# What the server adds to a client event's metadata; left out when a repeated event_id is compared.
CLAMP_METADATA_KEYS = ("client_timestamp_clamped", "client_timestamp_original")


@dataclass
class IngestReport:
    accepted: list[str]
    duplicates: list[str]
    # Positions in ``events`` whose event_id is already used by a different event (HTTP 409 in the API).
    conflicts: list[int]


def events_ingest(*, user, events: Sequence[dict]) -> IngestReport:
    """Store already-validated client events. A repeated event_id is a duplicate (acknowledged, stored once)
    when the event is the same as the stored one, a conflict when it is not (another event, another user's).

    Ids already stored (or repeated in the batch) are sorted out first, then the rest go in with one
    bulk INSERT. If that fails (a concurrent request stored one of the ids meanwhile) each event is
    retried in its own savepoint, so one conflict never loses the others.
    """
    report = IngestReport(accepted=[], duplicates=[], conflicts=[])
    now = timezone.now()
    rows: list[tuple[int, RunbookInteractionEvent]] = []
    repeats: list[tuple[int, RunbookInteractionEvent]] = []
    first: dict = {}
    for position, item in enumerate(events):
        row = _event_row(user=user, item=item, now=now)
        if row.event_id in first:
            repeats.append((position, row))
            continue
        first[row.event_id] = row
        rows.append((position, row))
    claimed = set(EventIdClaim.objects.filter(event_id__in=list(first)).values_list("event_id", flat=True))
    fresh = [row for _, row in rows if row.event_id not in claimed]
    taken = {row.event_id for _, row in rows if row.event_id in claimed}
    try:
        with transaction.atomic():
            RunbookInteractionEvent.objects.bulk_create(fresh)
        stored = {row.event_id for row in fresh}
    except IntegrityError:
        stored = set()
        for row in fresh:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                taken.add(row.event_id)
                continue
            stored.add(row.event_id)
    earlier = _stored_events(taken)
    clashing = {
        event_id for event_id in taken if event_id not in earlier or not _same_event(first[event_id], earlier[event_id])
    }
    for position, row in sorted(rows + repeats, key=lambda pair: pair[0]):
        if row.event_id in clashing or not _same_event(row, first[row.event_id]):
            report.conflicts.append(position)
        elif row.event_id in stored and row is first[row.event_id]:
            report.accepted.append(str(row.event_id))
        else:
            report.duplicates.append(str(row.event_id))
    return report


def _event_row(*, user, item: dict, now) -> RunbookInteractionEvent:
    client_timestamp, clamped = clamp_client_timestamp(item.get("client_timestamp"), now=now)
    # Client-supplied JSON is text from outside: secrets in it are replaced before it is stored.
    page_context, context_kinds = redact_json(item.get("page_context") or {})
    # The clamping keys are the server's: a client's own values for them are not kept.
    client_metadata = {
        key: value for key, value in (item.get("metadata") or {}).items() if key not in CLAMP_METADATA_KEYS
    }
    metadata, metadata_kinds = redact_json(client_metadata)
    if context_kinds or metadata_kinds:
        metadata["redactions"] = list(context_kinds + metadata_kinds)
    if clamped:
        metadata["client_timestamp_clamped"] = True
        metadata["client_timestamp_original"] = item["client_timestamp"].isoformat()
    return RunbookInteractionEvent(
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


def _stored_events(event_ids: set) -> dict:
    """The stored events with these ids, found through their claims' timestamps (one partition each)."""
    if not event_ids:
        return {}
    claims = EventIdClaim.objects.filter(event_id__in=list(event_ids))
    timestamps = list(claims.values_list("event_timestamp", flat=True))
    rows = RunbookInteractionEvent.objects.filter(event_id__in=list(event_ids), event_timestamp__in=timestamps)
    return {row.event_id: row for row in rows}


def _same_event(new: RunbookInteractionEvent, stored: RunbookInteractionEvent) -> bool:
    return _what_the_client_sent(new) == _what_the_client_sent(stored)


def _what_the_client_sent(row: RunbookInteractionEvent) -> tuple:
    """An event as its sender described it: without the server's clock, clamping and derived fields."""
    metadata = {key: value for key, value in row.metadata.items() if key not in CLAMP_METADATA_KEYS}
    client_timestamp = row.client_timestamp
    if row.metadata.get("client_timestamp_clamped"):
        with contextlib.suppress(TypeError, ValueError):
            client_timestamp = dt.datetime.fromisoformat(row.metadata["client_timestamp_original"])
    return (
        row.user_id,
        str(row.runbook_id),
        row.event_type,
        row.rank,
        row.source,
        str(row.audit_log_id or ""),
        str(row.session_id or ""),
        client_timestamp,
        _json_value(row.page_context),
        _json_value(metadata),
    )


def _json_value(value):
    """JSON compared by value, as jsonb does: 1, 1.0 and 1e0 alike (PostgreSQL returns numbers as numeric)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder), parse_float=Decimal, parse_int=Decimal)


def detail_view_record(
    *, user, runbook_id, audit_log_id=None, source: str = EventSource.DIRECT, window_seconds: int = 300
) -> RunbookInteractionEvent | None:
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
