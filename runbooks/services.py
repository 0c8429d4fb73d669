"""Writes for runbooks: create/update by slug, embeddings. The only writers of Runbook rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from runbooks.embeddings import EmbeddingError, embedding_hash, get_embedder, runbook_document_text
from runbooks.models import Runbook

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = (
    "name",
    "description",
    "tags",
    "steps",
    "body_markdown",
    "service",
    "category",
    "is_automated",
    "automation_ref",
    "enabled",
)
# Changing any of these changes what a reader sees, so the version goes up.
CONTENT_FIELDS = ("name", "description", "tags", "steps", "body_markdown")


def runbook_document(runbook: Runbook) -> str:
    return runbook_document_text(
        name=runbook.name, description=runbook.description, tags=runbook.tags, steps=runbook.steps
    )


@transaction.atomic
def runbook_upsert(*, slug: str, data: dict, allowed_groups: Sequence[str] | None = None) -> tuple[Runbook, str]:
    """Create or update the runbook ``slug``; returns (runbook, "created" | "updated" | "unchanged").

    ``allowed_groups`` are group names (created if missing); None leaves them as they are.
    Raises ValidationError with per-field messages on bad data. Re-embedding happens on commit.
    """
    unknown = sorted(set(data) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({key: "Unknown runbook field." for key in unknown})
    runbook = Runbook.objects.select_for_update().filter(slug=slug).first()
    status = "unchanged"
    if runbook is None:
        runbook = Runbook(slug=slug)
        status = "created"
    changed_content = False
    for key, value in data.items():
        if getattr(runbook, key) != value:
            setattr(runbook, key, value)
            if status != "created":
                status = "updated"
            changed_content = changed_content or key in CONTENT_FIELDS
    if status == "updated" and changed_content:
        runbook.version += 1
    if status != "unchanged":
        runbook.full_clean(exclude=["allowed_groups"])
        runbook.save()
    if allowed_groups is not None:
        groups = [Group.objects.get_or_create(name=name)[0] for name in allowed_groups]
        current = set(runbook.allowed_groups.values_list("pk", flat=True))
        if current != {group.pk for group in groups}:
            runbook.allowed_groups.set(groups)
            if status == "unchanged":
                status = "updated"
    if status != "unchanged":
        transaction.on_commit(partial(runbooks_embed_quietly, runbook_ids=[runbook.pk]))
    return runbook, status


@transaction.atomic
def runbook_save_from_admin(*, runbook: Runbook, changed_fields: Iterable[str]) -> Runbook:
    """Persist an admin edit; bumps the version on content changes and re-embeds on commit."""
    if runbook.pk and set(changed_fields) & set(CONTENT_FIELDS) and not runbook._state.adding:
        runbook.version += 1
    runbook.save()
    transaction.on_commit(partial(runbooks_embed_quietly, runbook_ids=[runbook.pk]))
    return runbook


@dataclass
class EmbedReport:
    embedded: int = 0
    unchanged: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def runbooks_embed(
    *,
    runbook_ids: Sequence | None = None,
    slugs: Sequence[str] | None = None,
    force: bool = False,
    batch_size: int = 32,
    progress=None,
) -> EmbedReport:
    """Embed runbooks whose text or model changed (all of them with ``force``).

    ``progress`` is called with the number of runbooks handled after each batch.
    """
    started = time.perf_counter()
    embedder = get_embedder()
    queryset = Runbook.objects.order_by("slug")
    if runbook_ids is not None:
        queryset = queryset.filter(pk__in=runbook_ids)
    if slugs:
        queryset = queryset.filter(slug__in=slugs)
    report = EmbedReport()
    pending: list[tuple[Runbook, str, str]] = []
    for runbook in queryset.only("id", "slug", "name", "description", "tags", "steps", "embedding_hash"):
        text = runbook_document(runbook)
        digest = embedding_hash(text, embedder.model_name)
        if not force and runbook.embedding_hash == digest:
            report.unchanged += 1
            if progress:
                progress(1)
            continue
        pending.append((runbook, text, digest))
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        try:
            vectors = embedder.embed_documents([text for _, text, _ in batch])
        except EmbeddingError as exc:
            report.failed += len(batch)
            report.failures.extend(f"{runbook.slug}: {exc}" for runbook, _, _ in batch)
            if progress:
                progress(len(batch))
            continue
        for (runbook, _, digest), vector in zip(batch, vectors, strict=True):
            Runbook.objects.filter(pk=runbook.pk).update(
                embedding=vector, embedding_model=embedder.model_name, embedding_hash=digest
            )
            report.embedded += 1
        if progress:
            progress(len(batch))
    report.seconds = time.perf_counter() - started
    return report


def runbooks_embed_quietly(*, runbook_ids: Sequence) -> None:
    """on_commit hook: an embedding failure must not break the edit; search falls back to keywords."""
    try:
        report = runbooks_embed(runbook_ids=runbook_ids)
    except Exception:  # noqa: BLE001 - logged, and verify_phase2 / readiness report stale embeddings
        logger.exception("re-embedding runbooks %s failed", list(runbook_ids))
        return
    if report.failed:
        logger.warning("re-embedding failed: %s", report.failures)


# --- Guided executions ------------------------------------------------------------------------


_EVENT_SOURCES = ("chat_page", "widget", "search_page", "runbook_list", "alert_page", "direct")


class ExecutionError(Exception):
    """The execution cannot change that way (not in progress, unknown step); message for the user."""


def _execution_event(*, execution, event_type: str, rank: int | None, source: str, metadata: dict | None = None):
    from audit.services import EventInput, interaction_event_record

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
    from audit.selectors import audit_logs_for_user, presented_solution

    if not audit_log_id:
        return None, None
    audit_log = audit_logs_for_user(user).filter(pk=audit_log_id).first()
    if audit_log is None:
        return None, None
    solution = presented_solution(audit_log, solution_id=str(runbook.pk), solution_type="runbook")
    if solution is None:
        return None, None
    return audit_log, solution.get("rank")


@transaction.atomic
def execution_start(*, user, runbook: Runbook, audit_log_id=None, source: str = "direct"):
    """Start a guided run of a runbook the user may see; links it to the recommendation it came from."""
    from django.utils import timezone

    from runbooks.models import RunbookExecution

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
    from runbooks.models import ExecutionStatus, RunbookExecution

    execution = RunbookExecution.objects.select_for_update().select_related("runbook").get(pk=execution_id, user=user)
    if execution.status != ExecutionStatus.IN_PROGRESS:
        raise ExecutionError(f"This execution is already {execution.get_status_display().lower()}.")
    return execution


@transaction.atomic
def execution_step_set(*, user, execution_id, step_index: int, done: bool):
    """Mark a step done or not done. Raises RunbookExecution.DoesNotExist for someone else's run."""
    from django.utils import timezone

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
    from django.utils import timezone

    from runbooks.models import ExecutionStatus

    execution = _locked_execution(user=user, execution_id=execution_id)
    execution.status = ExecutionStatus.SUCCEEDED if succeeded else ExecutionStatus.FAILED
    execution.finished_at = timezone.now()
    execution.notes = notes
    execution.save(update_fields=["status", "finished_at", "notes"])
    rank = None
    if execution.audit_log_id:
        _, rank = _recommendation_rank(user=user, audit_log_id=execution.audit_log_id, runbook=execution.runbook)
    _execution_event(
        execution=execution, event_type="succeeded" if succeeded else "failed", rank=rank, source=execution.source
    )
    return execution


def executions_close_stale(*, older_than_hours: float) -> int:
    """Mark runs still in progress after ``older_than_hours`` as abandoned (one event each)."""
    from django.utils import timezone

    from runbooks.models import ExecutionStatus, RunbookExecution

    cutoff = timezone.now() - timezone.timedelta(hours=older_than_hours)
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
