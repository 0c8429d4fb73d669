"""What an engineer does with an answer: clicks on its solutions and thumbs on the whole answer.

Both append to lists in ``AuditLog.user_modifications`` under a row lock (docs/tracking.md).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from aihelper.core.redaction import redact
from audit.models import AuditLog, EventIdClaim, EventSource, EventType
from audit.selectors import audit_logs_for_user
from audit.services.store import DuplicateEvent
from audit.sql import JsonbAppend, ListLength, StoredEntry, click_record_call

USER_ACTIONS = ("clicked_link", "copied_command", "started_execution", "dismissed")
# What a client action means in the event store (docs/tracking.md).
ACTION_EVENT_TYPES = {
    "clicked_link": EventType.CLICKED_LINK,
    "copied_command": EventType.CLICKED_LINK,
    "started_execution": EventType.STARTED_EXECUTION,
    "dismissed": EventType.FEEDBACK_NEGATIVE,
}

FEEDBACK_RATINGS = ("up", "down")
FEEDBACK_COMMENT_MAX_CHARS = 1000


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
    contradictions, DuplicateEvent when the event_id belongs to another event (also another click on this
    audit log: a repeated id is a duplicate only when the click is the same).
    """
    event_id = event_id or uuid.uuid4()
    # A runbook click's event claims its id (the event store's trigger); a click on anything else writes no event,
    # so it claims its id itself, in the same transaction: one id space for clicks, events and feedback.
    claims_own_id = solution_type != "runbook"
    try:
        # A stored-procedure call (audit.sql.CLICK_RECORD_SQL), kept because this is the hot path
        # (docs/decisions.md). In autocommit the one statement is its own transaction (no BEGIN / COMMIT
        # round trips); inside a caller's transaction a savepoint keeps a failure from breaking it.
        autocommit = connection.get_autocommit() and not connection.in_atomic_block and not claims_own_id
        with contextlib.nullcontext() if autocommit else transaction.atomic():
            outcome = click_record_call(
                user_id=user.pk,
                audit_log_id=audit_log_id,
                session_id=session_id,
                solution_id=str(solution_id),
                solution_type=solution_type,
                user_action=user_action,
                client_rank=client_rank,
                event_id=event_id,
                source=source,
                event_type=ACTION_EVENT_TYPES[user_action],
            )
            if claims_own_id and outcome["status"] == "created":
                _event_id_claim(event_id)
    except IntegrityError as exc:
        if "runbook_interaction_event_ids_pkey" in str(exc):
            raise DuplicateEvent(str(event_id)) from None
        raise
    status = outcome["status"]
    if status == "duplicate" and not _same_click(
        audit_log_id=audit_log_id,
        event_id=event_id,
        solution_id=str(solution_id),
        solution_type=solution_type,
        user_action=user_action,
        client_rank=client_rank,
        source=source,
    ):
        raise DuplicateEvent(str(event_id))
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


def _event_id_claim(event_id: uuid.UUID) -> None:
    """Take ``event_id`` in the id space the event store keeps (runbook_interaction_event_ids); IntegrityError
    on its primary key when a click, an event or feedback already has it."""
    EventIdClaim.objects.create(event_id=event_id, event_timestamp=timezone.now())


def _same_click(
    *,
    audit_log_id,
    event_id: uuid.UUID,
    solution_id: str,
    solution_type: str,
    user_action: str,
    client_rank: int | None,
    source: str,
) -> bool:
    """Whether the click stored on this audit log under ``event_id`` is the one described (a retry)."""
    stored = (
        AuditLog.objects.filter(pk=audit_log_id)
        .annotate(previous=StoredEntry("clicks", event_id))
        .values_list("previous", flat=True)
        .first()
    ) or {}
    return (
        stored.get("solution_chosen_id") == solution_id
        and stored.get("solution_chosen_type") == solution_type
        and stored.get("user_action") == user_action
        and stored.get("source") == source
        and client_rank in (None, stored.get("rank"))
    )


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
    concurrent feedback is never lost. A repeated event_id with the same rating and comment is acknowledged
    and stored once; with another rating or comment, or an id a click, an event or anyone's feedback already
    has, it raises DuplicateEvent. Raises AuditLog.DoesNotExist
    for someone else's (or an unknown) audit log.
    """
    if rating not in FEEDBACK_RATINGS:
        raise ValueError(f"unknown rating {rating!r}")
    event_id = event_id or uuid.uuid4()
    with transaction.atomic():
        audit_log = (
            audit_logs_for_user(user)
            .select_for_update()
            .only("id")
            .annotate(feedback_count=ListLength("feedback"), previous=StoredEntry("feedback", event_id))
            .get(pk=audit_log_id)
        )
        cleaned = redact(comment[:FEEDBACK_COMMENT_MAX_CHARS])
        if audit_log.previous:
            previous = audit_log.previous
            if previous.get("rating") != rating or previous.get("comment") != cleaned.text:
                raise DuplicateEvent(str(event_id))
            return AnswerFeedbackResult(audit_log.pk, event_id, rating, audit_log.feedback_count, True)
        try:
            with transaction.atomic():
                _event_id_claim(event_id)  # one id space: a click's, an event's or anyone's feedback id conflicts
        except IntegrityError:
            raise DuplicateEvent(str(event_id)) from None
        entry = {
            "rating": rating,
            "comment": cleaned.text,
            "at": timezone.now().isoformat(),
            "event_id": str(event_id),
        }
        if cleaned.kinds:
            entry["redactions"] = list(cleaned.kinds)
        AuditLog.objects.filter(pk=audit_log.pk).update(user_modifications=JsonbAppend(key="feedback", item=entry))
    return AnswerFeedbackResult(audit_log.pk, event_id, rating, audit_log.feedback_count + 1, False)
