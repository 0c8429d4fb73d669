import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from aihelper.core.rendering import render_markdown
from audit.services.ingest import detail_view_record
from runbooks.access import runbook_can_execute
from runbooks.executions import ExecutionError, execution_finish, execution_start, execution_step_set
from runbooks.models import ExecutionStatus, RunbookExecution
from runbooks.selectors import visible_runbooks

NOTES_MAX_CHARS = 5000


def _uuid_or_none(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


@login_required
@require_GET
def detail(request, pk):
    runbook = get_object_or_404(visible_runbooks(request.user).prefetch_related("allowed_groups"), pk=pk)
    # Reached from a recommendation: the link carries ?from=<audit log id>&source=<ui>.
    audit_log_id = _uuid_or_none(request.GET.get("from"))
    if audit_log_id:
        detail_view_record(
            user=request.user,
            runbook_id=runbook.pk,
            audit_log_id=audit_log_id,
            source=request.GET.get("source", "direct"),
            window_seconds=settings.VIEW_DEDUP_SECONDS,
        )
    # render_markdown parses without raw HTML and sanitises with an allow-list (aihelper/rendering.py).
    body_html = mark_safe(render_markdown(runbook.body_markdown))  # noqa: S308
    context = {
        "runbook": runbook,
        "body_html": body_html,
        "can_execute": runbook_can_execute(runbook=runbook, user=request.user),
        "from_audit_log": audit_log_id or "",
        "active_execution": RunbookExecution.objects.filter(
            runbook=runbook, user=request.user, status=ExecutionStatus.IN_PROGRESS
        ).first(),
    }
    return render(request, "runbooks/detail.html", context)


@login_required
@require_POST
def execution_start_view(request, pk):
    runbook = get_object_or_404(visible_runbooks(request.user).prefetch_related("allowed_groups"), pk=pk)
    if not runbook_can_execute(runbook=runbook, user=request.user):
        return HttpResponseForbidden("You may view this runbook but not run it (automated; restricted).")
    execution = execution_start(
        user=request.user,
        runbook=runbook,
        audit_log_id=_uuid_or_none(request.POST.get("from")),
        source=request.POST.get("source", "direct"),
    )
    return redirect("runbooks:execution", pk=execution.pk)


def _own_execution(request, pk) -> RunbookExecution:
    return get_object_or_404(RunbookExecution.objects.select_related("runbook"), pk=pk, user=request.user)


def _execution_context(execution: RunbookExecution, error: str = "") -> dict:
    progress = execution.step_progress or {}
    steps = [
        {"index": index, "step": step, "done": progress.get(str(index), {}).get("done", False)}
        for index, step in enumerate(execution.runbook.steps or [])
    ]
    return {
        "execution": execution,
        "steps": steps,
        "done_count": sum(1 for step in steps if step["done"]),
        "in_progress": execution.status == ExecutionStatus.IN_PROGRESS,
        "error": error,
    }


@login_required
@require_GET
def execution_detail(request, pk):
    execution = _own_execution(request, pk)
    return render(request, "runbooks/execution.html", _execution_context(execution))


@login_required
@require_POST
def execution_step(request, pk, index):
    execution = _own_execution(request, pk)
    error, status = "", 200
    try:
        execution = execution_step_set(
            user=request.user, execution_id=execution.pk, step_index=index, done=request.POST.get("done") == "1"
        )
    except ExecutionError as exc:
        error, status = str(exc), 409
    template = "runbooks/execution.html#checklist" if request.htmx else "runbooks/execution.html"
    return render(request, template, _execution_context(execution, error), status=status)


@login_required
@require_POST
def execution_finish_view(request, pk):
    execution = _own_execution(request, pk)
    outcome = request.POST.get("outcome")
    notes = request.POST.get("notes", "")
    if outcome not in ("succeeded", "failed") or len(notes) > NOTES_MAX_CHARS:
        message = (
            "Choose succeeded or failed." if outcome not in ("succeeded", "failed")
            else f"Notes are limited to {NOTES_MAX_CHARS} characters."
        )
        return render(request, "runbooks/execution.html", _execution_context(execution, message), status=400)
    try:
        execution = execution_finish(
            user=request.user, execution_id=execution.pk, succeeded=outcome == "succeeded", notes=notes
        )
    except ExecutionError as exc:
        return render(request, "runbooks/execution.html", _execution_context(execution, str(exc)), status=409)
    return redirect("runbooks:execution", pk=execution.pk)
