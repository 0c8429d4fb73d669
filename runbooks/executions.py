"""Guided executions of a runbook: start, tick steps, finish, close the abandoned ones. Each change
writes its interaction event (audit) in the same transaction."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from aihelper.core.redaction import RETENTION_MARKER, redact
from audit.selectors import audit_logs_for_user, presented_solution
from audit.services.store import EventInput, interaction_event_record
from runbooks.models import ExecutionStatus, Runbook, RunbookExecution

_EVENT_SOURCES = ("chat_page", "widget", "search_page", "runbook_list", "alert_page", "alert", "direct")


class ExecutionError(Exception):
    """The execution cannot change that way (not in progress, unknown step); message for the user."""


def _execution_event(*, execution, event_type: str, rank: int | None, source: str, metadata: dict | None = None):
    interaction_event_record(
        event=EventInput(
            runbook_id=execution.runbook_id,
            event_type=event_type,
            user_id=execution.user_id,
            session_id=execution.session_id,
            audit_log_id=execution.audit_log_id,
            rank=rank,
            source=source,
            metadata={"execution_id": str(execution.pk), **(metadata or {})},
        )
    )


def _recommendation_rank(*, user, audit_log_id, runbook: Runbook) -> tuple[object, int | None]:
    """The user's audit log that presented ``runbook`` and its rank there, else (None, None)."""
    if not audit_log_id:
        return None, None
    audit_log = audit_logs_for_user(user).filter(pk=audit_log_id).first()
    if audit_log is None:
        return None, None
    solution = presented_solution(audit_log, solution_id=str(runbook.pk), solution_type="runbook")
    if solution is None:
        return None, None
    return audit_log, solution.rank


@transaction.atomic
def execution_start(*, user, runbook: Runbook, audit_log_id=None, source: str = "direct"):
    """Start a guided run of a runbook the user may see; links it to the recommendation it came from."""
    audit_log, rank = _recommendation_rank(user=user, audit_log_id=audit_log_id, runbook=runbook)
    execution = RunbookExecution.objects.create(
        runbook=runbook,
        user=user,
        audit_log=audit_log,
        session_id=audit_log.session_id if audit_log else None,
        started_at=timezone.now(),
        step_progress={},
        source=source if source in _EVENT_SOURCES else "direct",
    )
    execution.rank = rank
    _execution_event(execution=execution, event_type="started_execution", rank=rank, source=execution.source)
    return execution


def _locked_execution(*, user, execution_id):
    execution = RunbookExecution.objects.select_for_update().select_related("runbook").get(pk=execution_id, user=user)
    if execution.status != ExecutionStatus.IN_PROGRESS:
        raise ExecutionError(f"This execution is already {execution.get_status_display().lower()}.")
    return execution


@transaction.atomic
def execution_step_set(*, user, execution_id, step_index: int, done: bool):
    """Mark a step done or not done. Raises RunbookExecution.DoesNotExist for someone else's run."""
    execution = _locked_execution(user=user, execution_id=execution_id)
    if not 0 <= step_index < len(execution.runbook.steps or []):
        raise ExecutionError(f"This runbook has no step {step_index + 1}.")
    progress = dict(execution.step_progress or {})
    progress[str(step_index)] = {"done": done, "at": timezone.now().isoformat()}
    execution.step_progress = progress
    execution.save(update_fields=["step_progress"])
    return execution


@transaction.atomic
def execution_finish(*, user, execution_id, succeeded: bool, notes: str = ""):
    execution = _locked_execution(user=user, execution_id=execution_id)
    execution.status = ExecutionStatus.SUCCEEDED if succeeded else ExecutionStatus.FAILED
    execution.finished_at = timezone.now()
    cleaned = redact(notes)
    execution.notes = cleaned.text
    execution.save(update_fields=["status", "finished_at", "notes"])
    rank = None
    if execution.audit_log_id:
        _, rank = _recommendation_rank(user=user, audit_log_id=execution.audit_log_id, runbook=execution.runbook)
    _execution_event(
        execution=execution,
        event_type="succeeded" if succeeded else "failed",
        rank=rank,
        source=execution.source,
        metadata={"notes_redactions": list(cleaned.kinds)} if cleaned.kinds else None,
    )
    return execution


def executions_close_stale(*, older_than_hours: float) -> int:
    """Mark runs still in progress after ``older_than_hours`` as abandoned (one event each)."""
    cutoff = timezone.now() - dt.timedelta(hours=older_than_hours)
    closed = 0
    stale_ids = list(
        RunbookExecution.objects.filter(status=ExecutionStatus.IN_PROGRESS, started_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for execution_id in stale_ids:
        with transaction.atomic():
            execution = (
                RunbookExecution.objects.select_for_update()
                .filter(pk=execution_id, status=ExecutionStatus.IN_PROGRESS)
                .first()
            )
            if execution is None:
                continue
            execution.status = ExecutionStatus.ABANDONED
            execution.finished_at = timezone.now()
            execution.save(update_fields=["status", "finished_at"])
            _execution_event(
                execution=execution, event_type="abandoned", rank=None, source=execution.source,
                metadata={"closed_after_hours": older_than_hours},
            )
            closed += 1
    return closed


def execution_notes_blank_before(*, cutoff) -> int:
    """Retention: notes of runs started before ``cutoff`` become RETENTION_MARKER (status and times stay)."""
    return (
        RunbookExecution.objects.filter(started_at__lt=cutoff)
        .exclude(notes__in=["", RETENTION_MARKER])
        .update(notes=RETENTION_MARKER)
    )
