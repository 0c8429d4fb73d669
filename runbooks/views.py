import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from aihelper.core.rendering import render_markdown
from audit.services.ingest import detail_view_record
from runbooks.access import runbook_can_execute
from runbooks.authoring_access import can_edit_runbook
from runbooks.bodies import body_without_repeats, split_front_matter
from runbooks.executions import ExecutionError, execution_finish, execution_start, execution_step_set
from runbooks.models import ExecutionStatus, RunbookExecution, RunbookStatus
from runbooks.selectors import visible_runbooks

NOTES_MAX_CHARS = 5000


def _uuid_or_none(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


def _runbook_not_found(request):
    """One page whether the runbook does not exist or the user may not see it: it reveals neither."""
    return render(request, "runbooks/not_found.html", status=404)


def _body_for_display(runbook) -> str:
    """The stored body is already cleaned on import (runbooks/bodies.py); rows stored before that, or
    written by hand in the admin, still must not show their front matter or repeat the steps."""
    try:
        _, body = split_front_matter(runbook.body_markdown or "")
    except ValueError:
        body = runbook.body_markdown or ""
    return body_without_repeats(body, steps=runbook.steps or [], name=runbook.name)


@login_required
@require_GET
def detail(request, pk):
    runbook = visible_runbooks(request.user).prefetch_related("allowed_groups").filter(pk=pk).first()
    # A draft (written in the editor or from the knowledge-gap report, which quotes staff-only questions) is
    # for those who may edit it until someone activates it; a retired runbook stays readable, marked retired.
    if runbook is None or (runbook.status == RunbookStatus.DRAFT and not can_edit_runbook(request.user, runbook)):
        return _runbook_not_found(request)
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
    body_html = mark_safe(render_markdown(_body_for_display(runbook)))  # noqa: S308
    context = {
        "runbook": runbook,
        "body_html": body_html,
        "can_execute": runbook_can_execute(runbook=runbook, user=request.user),
        "can_edit": can_edit_runbook(request.user, runbook),
        "from_audit_log": audit_log_id or "",
        "active_execution": RunbookExecution.objects.filter(
            runbook=runbook, user=request.user, status=ExecutionStatus.IN_PROGRESS
        ).first(),
    }
    return render(request, "runbooks/detail.html", context)


@login_required
@require_POST
def execution_start_view(request, pk):
    runbook = visible_runbooks(request.user).prefetch_related("allowed_groups").filter(pk=pk).first()
    if runbook is None:
        return _runbook_not_found(request)
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


def _origin_link(execution: RunbookExecution) -> tuple[str, str]:
    """(url, label) of where this run started: the chat answer that recommended it, else the page it
    was started from, else the runbook."""
    if execution.session_id:
        url = reverse("chat_session", args=[execution.session_id])
        anchor = f"#answer-{execution.audit_log_id}" if execution.audit_log_id else ""
        return f"{url}{anchor}", "Back to the chat answer that led here"
    if execution.source == "search_page":
        return reverse("runbooks:search"), "Back to runbook search"
    return reverse("runbooks:detail", args=[execution.runbook_id]), "Back to the runbook"


def _step_items(execution: RunbookExecution) -> list[dict]:
    progress = execution.step_progress or {}
    return [
        {"index": index, "number": index + 1, "step": step, "done": progress.get(str(index), {}).get("done", False)}
        for index, step in enumerate(execution.runbook.steps or [])
    ]


def _execution_context(execution: RunbookExecution, error: str = "", confirm: dict | None = None) -> dict:
    steps = _step_items(execution)
    done_count = sum(1 for step in steps if step["done"])
    origin_url, origin_label = _origin_link(execution)
    return {
        "execution": execution,
        "steps": steps,
        "done_count": done_count,
        "done_percent": round(100 * done_count / len(steps)) if steps else 100,
        "in_progress": execution.status == ExecutionStatus.IN_PROGRESS,
        "error": error,
        "confirm": confirm,
        "origin_url": origin_url,
        "origin_label": origin_label,
    }


def _finish_needs_confirmation(execution: RunbookExecution, *, outcome: str, notes: str) -> dict | None:
    """What the engineer must confirm before finishing (the page's dialog asks the same), or None.

    Finishing with steps not ticked, or saying it did not work without a word of why, is allowed but
    never by accident: the form must carry ``confirm=1``."""
    unticked = [item for item in _step_items(execution) if not item["done"]]
    missing_note = outcome == "failed" and not notes.strip()
    if not unticked and not missing_note:
        return None
    return {"outcome": outcome, "notes": notes, "unticked": unticked, "missing_note": missing_note}


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
    message = (
        "Choose succeeded or failed." if outcome not in ("succeeded", "failed")
        else f"Notes are limited to {NOTES_MAX_CHARS} characters." if len(notes) > NOTES_MAX_CHARS
        else "The notes contain a NUL character (\\0), which cannot be stored: remove it." if "\x00" in notes
        else ""
    )
    if message:
        return render(request, "runbooks/execution.html", _execution_context(execution, message), status=400)
    confirm = None if request.POST.get("confirm") == "1" else _finish_needs_confirmation(
        execution, outcome=outcome, notes=notes
    )
    if confirm is not None and execution.status == ExecutionStatus.IN_PROGRESS:
        return render(request, "runbooks/execution.html", _execution_context(execution, confirm=confirm), status=400)
    try:
        execution = execution_finish(
            user=request.user, execution_id=execution.pk, succeeded=outcome == "succeeded", notes=notes
        )
    except ExecutionError as exc:
        return render(request, "runbooks/execution.html", _execution_context(execution, str(exc)), status=409)
    return redirect("runbooks:execution", pk=execution.pk)
