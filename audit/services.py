"""The only writers of audit logs and interaction events (append-only)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import F, Func, IntegerField, JSONField, Value
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
            # Fresh ids inside this function's own transaction: a clash is impossible, so no savepoint.
            savepoint=False,
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


# --- Click tracking and event ingestion ---------------------------------------------------

USER_ACTIONS = ("clicked_link", "copied_command", "started_execution", "dismissed")
SOLUTION_TYPES = ("runbook", "manual")
# What a client action means in the event store (docs/tracking.md).
ACTION_EVENT_TYPES = {
    "clicked_link": EventType.CLICKED_LINK,
    "copied_command": EventType.CLICKED_LINK,
    "started_execution": EventType.STARTED_EXECUTION,
    "dismissed": EventType.FEEDBACK_NEGATIVE,
}
# Event types a client may send to the ingestion endpoint; the server writes the others itself.
CLIENT_EVENT_TYPES = (
    EventType.CLICKED_LINK,
    EventType.VIEWED_DETAIL,
    EventType.FEEDBACK_POSITIVE,
    EventType.FEEDBACK_NEGATIVE,
)
CLIENT_CLOCK_FUTURE_TOLERANCE = timezone.timedelta(minutes=5)
CLIENT_CLOCK_PAST_TOLERANCE = timezone.timedelta(days=1)


class TrackingRejected(Exception):
    """The request is well-formed but contradicts what was stored (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ClickResult:
    audit_log_id: uuid.UUID
    event_id: uuid.UUID
    click_count: int
    rank: int | None
    time_to_decision_seconds: float
    duplicate: bool


class _JsonbAppend(Func):
    """user_modifications with ``item`` appended to the list under ``key`` and ``replace``'s top-level
    keys set, computed by PostgreSQL: the growing list is never read into Python or re-serialised."""

    output_field = JSONField()

    def __init__(self, *, key: str, item: dict, replace: dict | None = None) -> None:
        super().__init__(
            F("user_modifications"),
            Value(key),
            Value(json.dumps([item], cls=DjangoJSONEncoder)),
            Value(json.dumps(replace or {}, cls=DjangoJSONEncoder)),
        )

    def as_sql(self, compiler, connection, **extra):
        (column, column_params), (key, key_params), (item, item_params), (replace, replace_params) = (
            compiler.compile(expression) for expression in self.source_expressions
        )
        template = (
            f"(jsonb_set(COALESCE({column}, '{{}}'::jsonb), ARRAY[({key})::text],"
            f" COALESCE({column} -> ({key})::text, '[]'::jsonb) || ({item})::jsonb) || ({replace})::jsonb)"
        )
        return template, (*column_params, *key_params, *column_params, *key_params, *item_params, *replace_params)


class _ListLength(Func):
    """Length of the user_modifications list under ``key`` (0 when absent)."""

    output_field = IntegerField()

    def __init__(self, key: str) -> None:
        super().__init__(F("user_modifications"), Value(key))

    def as_sql(self, compiler, connection, **extra):
        (column, column_params), (key, key_params) = (compiler.compile(e) for e in self.source_expressions)
        return (
            f"jsonb_array_length(COALESCE({column} -> ({key})::text, '[]'::jsonb))",
            (*column_params, *key_params),
        )


class _StoredEntry(Func):
    """The entry with this event_id in the user_modifications list under ``key``, or NULL (jsonpath)."""

    output_field = JSONField()

    def __init__(self, key: str, event_id: uuid.UUID) -> None:
        super().__init__(F("user_modifications"), Value(f"$.{key}[*] ? (@.event_id == $id)"), Value(str(event_id)))

    def as_sql(self, compiler, connection, **extra):
        (column, column_params), (path, path_params), (value, value_params) = (
            compiler.compile(e) for e in self.source_expressions
        )
        return (
            f"jsonb_path_query_first({column}, ({path})::jsonpath, jsonb_build_object('id', ({value})::text))",
            (*column_params, *path_params, *value_params),
        )


def click_record(
    *,
    user,
    audit_log_id: uuid.UUID,
    solution_id: str,
    solution_type: str,
    user_action: str,
    client_rank: int | None = None,
    event_id: uuid.UUID | None = None,
    session_id: uuid.UUID | None = None,
    source: str = EventSource.DIRECT,
) -> ClickResult:
    """Append a click to the audit log and write its event, atomically, in one round trip.

    The work is the database function ``audit_click_record`` (audit/migrations/0005): it locks the user's
    audit log row (SELECT ... FOR UPDATE), so concurrent clicks serialise and none is lost; checks the
    session, a repeated event_id (acknowledged, stored once), that the solution was presented and the
    client rank; appends the click and the latest-choice keys; writes the event for runbook solutions.
    Raises AuditLog.DoesNotExist for someone else's (or an unknown) audit log, TrackingRejected for
    contradictions, DuplicateEvent when the event_id belongs to another event.
    """
    from django.db import connection

    event_id = event_id or uuid.uuid4()
    try:
        # A stored-procedure call with bound parameters: the one raw statement outside analytics/queries.py,
        # kept because this is the hot path (docs/decisions.md). In autocommit the one statement is its own
        # transaction (no BEGIN / COMMIT round trips); inside a caller's transaction a savepoint keeps a
        # failure from breaking it.
        autocommit = connection.get_autocommit() and not connection.in_atomic_block
        block = contextlib.nullcontext() if autocommit else transaction.atomic()
        with block, connection.cursor() as cursor:
            cursor.execute(
                "SELECT audit_click_record(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [user.pk, audit_log_id, session_id, str(solution_id), solution_type, user_action, client_rank,
                 event_id, source, ACTION_EVENT_TYPES[user_action]],
            )
            outcome = cursor.fetchone()[0]
            if isinstance(outcome, str):
                outcome = json.loads(outcome)
    except IntegrityError as exc:
        if "runbook_interaction_event_ids_pkey" in str(exc):
            raise DuplicateEvent(str(event_id)) from None
        raise
    status = outcome["status"]
    if status == "not_found":
        raise AuditLog.DoesNotExist(f"no audit log {audit_log_id} for this user")
    if status == "session_mismatch":
        raise TrackingRejected("session_id", "audit_log_id does not belong to this session_id.")
    if status == "not_presented":
        raise TrackingRejected(
            "solution_chosen_id", f"{solution_type} {solution_id} was not presented in audit log {audit_log_id}."
        )
    if status == "rank_mismatch":
        raise TrackingRejected(
            "solution_chosen_rank", f"rank {client_rank} disagrees with the presented rank {outcome['rank']}."
        )
    return ClickResult(
        audit_log_id=audit_log_id if isinstance(audit_log_id, uuid.UUID) else uuid.UUID(str(audit_log_id)),
        event_id=event_id,
        click_count=outcome["click_count"],
        rank=outcome["rank"],
        time_to_decision_seconds=float(outcome["time_to_decision_seconds"]),
        duplicate=status == "duplicate",
    )


FEEDBACK_RATINGS = ("up", "down")
FEEDBACK_COMMENT_MAX_CHARS = 1000


@dataclass(frozen=True)
class AnswerFeedbackResult:
    audit_log_id: uuid.UUID
    event_id: uuid.UUID
    rating: str
    feedback_count: int
    duplicate: bool


def answer_feedback_record(
    *, user, audit_log_id: uuid.UUID, rating: str, comment: str = "", event_id: uuid.UUID | None = None
) -> AnswerFeedbackResult:
    """Append a thumbs up/down on a whole answer to user_modifications["feedback"].

    Same locking as click_record: the row is locked and one PostgreSQL-computed UPDATE appends, so
    concurrent feedback is never lost. A repeated event_id is acknowledged and stored once. Raises
    AuditLog.DoesNotExist for someone else's (or an unknown) audit log.
    """
    from audit.selectors import audit_logs_for_user

    if rating not in FEEDBACK_RATINGS:
        raise ValueError(f"unknown rating {rating!r}")
    event_id = event_id or uuid.uuid4()
    with transaction.atomic():
        audit_log = (
            audit_logs_for_user(user)
            .select_for_update()
            .only("id")
            .annotate(feedback_count=_ListLength("feedback"), previous=_StoredEntry("feedback", event_id))
            .get(pk=audit_log_id)
        )
        if audit_log.previous:
            return AnswerFeedbackResult(
                audit_log.pk, event_id, audit_log.previous.get("rating"), audit_log.feedback_count, True
            )
        entry = {
            "rating": rating,
            "comment": comment[:FEEDBACK_COMMENT_MAX_CHARS],
            "at": timezone.now().isoformat(),
            "event_id": str(event_id),
        }
        AuditLog.objects.filter(pk=audit_log.pk).update(
            user_modifications=_JsonbAppend(key="feedback", item=entry)
        )
    return AnswerFeedbackResult(audit_log.pk, event_id, rating, audit_log.feedback_count + 1, False)


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
    from audit.models import EventIdClaim

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
        metadata = dict(item.get("metadata") or {})
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
                page_context=item.get("page_context") or {},
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
    from audit.selectors import audit_logs_for_user, presented_solution

    audit_log = audit_logs_for_user(user).filter(pk=audit_log_id).first() if audit_log_id else None
    if audit_log is None:
        return None
    solution = presented_solution(audit_log, solution_id=str(runbook_id), solution_type="runbook")
    if solution is None:
        return None
    since = timezone.now() - timezone.timedelta(seconds=window_seconds)
    with transaction.atomic():
        # One view per (user, recommendation, runbook) per window, even for concurrent requests.
        from django.db import connection

        with connection.cursor() as cursor:
            lock_key = f"view:{user.pk}:{audit_log.pk}:{runbook_id}"
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [lock_key])
        recent = RunbookInteractionEvent.objects.filter(
            event_timestamp__gte=since,
            event_type=EventType.VIEWED_DETAIL,
            audit_log_id=audit_log.pk,
            runbook_id=runbook_id,
            user_id=user.pk,
        ).exists()
        if recent:
            return None
        details = audit_log.ai_action_details
        return interaction_event_record(
            event=EventInput(
                runbook_id=runbook_id,
                event_type=EventType.VIEWED_DETAIL,
                user_id=user.pk,
                session_id=audit_log.session_id,
                audit_log_id=audit_log.pk,
                rank=solution.get("rank"),
                source=source if source in EventSource.values else EventSource.DIRECT,
                experiment=details.get("experiment") or "",
                variant=details.get("variant") or "",
            )
        )
