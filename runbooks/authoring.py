"""The runbook editor (issue 20): a staff page linked from the admin, also open to members of a runbook's
owning group for that runbook. Steps as rows, messages in words by each field, a live Markdown preview
through the sanitising renderer, and a preview of the whole page as the engineer sees it."""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from aihelper.core.api_errors import json_view
from aihelper.core.rendering import render_markdown
from runbooks.authoring_access import can_create_runbooks, can_edit_runbook, review_due_at
from runbooks.bodies import body_without_repeats, split_front_matter
from runbooks.forms import BODY_MAX_CHARS, RunbookForm, StepRow, stale_version_message, step_rows_from_steps
from runbooks.models import Runbook
from runbooks.selectors import visible_runbooks
from runbooks.services import StaleRunbookVersion, runbook_save_from_editor


def _markdown_html(body: str, *, steps=(), name: str = ""):
    """The body as the runbook page shows it: no front matter, no section that only repeats the steps,
    rendered by the sanitising renderer (markdown-it without raw HTML, then nh3's allow-list)."""
    if len(body) > BODY_MAX_CHARS:  # the form says so by the field; rendering it would only burn CPU
        raise ValueError(f"longer than {BODY_MAX_CHARS} characters")
    _, rest = split_front_matter(body)
    return mark_safe(render_markdown(body_without_repeats(rest, steps=list(steps), name=name)))  # noqa: S308


def _forbidden(request, message: str):
    return render(request, "runbooks/authoring/forbidden.html", {"message": message}, status=403)


def _page_preview(form: RunbookForm) -> dict:
    """What the runbook page would show for the values typed (valid or not), for the preview section."""
    data = form.data
    steps = [row.as_step() for row in form.step_rows if not row.empty]
    try:
        body_html = _markdown_html(data.get("body_markdown", ""), steps=steps, name=data.get("name", ""))
    except ValueError:
        body_html = ""
    return {
        "name": data.get("name", "").strip() or "(no name yet)",
        "display_title": data.get("display_title", "").strip(),
        "description": data.get("description", "").strip(),
        "tags": [tag.strip() for tag in data.get("tags", "").split(",") if tag.strip()],
        "service": data.get("service", "").strip(),
        "steps": steps,
        "body_html": body_html,
    }


def _initial(runbook: Runbook | None) -> dict:
    if runbook is None:
        return {}
    return {
        "name": runbook.name,
        "slug": runbook.slug,
        "display_title": runbook.display_title,
        "description": runbook.description,
        "tags": ", ".join(runbook.tags or []),
        "service": runbook.service,
        "category": runbook.category,
        "body_markdown": runbook.body_markdown,
        "status": runbook.status,
        "owner_group": runbook.owner_group_id,
        "review_interval_days": runbook.review_interval_days,
        "version": runbook.version,
    }


def _model_errors_on_form(form, invalid: ValidationError) -> None:
    """The model's validation messages by the form's fields (a field the form does not have: at the top, named).
    Front matter fills fields after the form checked them, so the model's checks are the last word."""
    if not hasattr(invalid, "error_dict"):
        form.add_error(None, invalid.messages)
        return
    for field, messages in invalid.message_dict.items():
        if field in form.fields:
            form.add_error(field, messages)
        else:
            form.add_error(None, [f"{field.replace('_', ' ')}: {message}" for message in messages])


def _editor(request, runbook: Runbook | None):
    preview = None
    if request.method == "POST":
        form = RunbookForm(request.POST, initial=_initial(runbook), runbook=runbook, staff=request.user.is_staff)
        if "preview" in request.POST:
            form.is_valid()  # messages by the fields in the preview too; nothing is saved
            preview = _page_preview(form)
        elif form.is_valid():
            try:
                saved = runbook_save_from_editor(
                    slug=form.cleaned_data["slug"],
                    data=form.runbook_data(),
                    owner_group=form.cleaned_data["owner_group"],
                    user=request.user,
                    new=runbook is None,
                    expected_version=form.cleaned_data.get("version"),
                )
            except StaleRunbookVersion as stale:  # another save got in between the form's check and this one
                form.now_at_version(stale.current)
                form.add_error(None, stale_version_message(stale.current))
                runbook.refresh_from_db()
            except ValidationError as invalid:  # the model's own rules, e.g. a value the front matter supplied
                _model_errors_on_form(form, invalid)
            else:
                return redirect(f"{reverse('runbooks:edit', args=[saved.pk])}?saved={saved.version}")
        rows = form.step_rows
    else:
        form = RunbookForm(initial=_initial(runbook), runbook=runbook, staff=request.user.is_staff)
        rows = step_rows_from_steps(runbook.steps) if runbook else []
    body = form["body_markdown"].value() or ""
    try:
        body_html = _markdown_html(body)
    except ValueError:
        body_html = ""
    saved = request.GET.get("saved", "")
    context = {
        "form": form,
        "runbook": runbook,
        "rows": rows or [StepRow()],
        "empty_row": StepRow(),
        "body_html": body_html,
        "preview": preview,
        "saved_version": int(saved) if re.fullmatch(r"[0-9]{1,9}", saved) else None,
        "review_due_at": review_due_at(runbook) if runbook else None,
    }
    status = 400 if request.method == "POST" and preview is None else 200
    return render(request, "runbooks/authoring/edit.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def runbook_new(request):
    if not can_create_runbooks(request.user):
        return _forbidden(request, "Only staff may create runbooks. Ask an administrator to add yours.")
    return _editor(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def runbook_edit(request, pk):
    runbook = Runbook.objects.select_related("owner_group").filter(pk=pk).first()
    if runbook is None:
        return render(request, "runbooks/not_found.html", status=404)
    if not can_edit_runbook(request.user, runbook):
        if not visible_runbooks(request.user).filter(pk=runbook.pk).exists():
            # Like the runbook page: someone who may not see it learns nothing, not even that it exists.
            return render(request, "runbooks/not_found.html", status=404)
        owners = f" ({runbook.owner_group.name})" if runbook.owner_group else ""
        return _forbidden(request, f"Only staff and members of the runbook's owning group{owners} may edit it.")
    return _editor(request, runbook)


@json_view("POST")
def markdown_preview(request):
    """The live preview of the editor's Markdown: JSON {"html", "front_matter"}; the same renderer as the
    runbook page. For people who may write runbooks (staff, members of an owning group)."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"error": "Log in to preview runbooks."}, status=401)
    if not (can_create_runbooks(user) or Runbook.objects.filter(owner_group__in=user.groups.all()).exists()):
        return JsonResponse({"error": "Only people who may edit runbooks can preview them."}, status=403)
    body = request.POST.get("body_markdown")
    if body is None:
        return JsonResponse({"error": "Send the Markdown as body_markdown."}, status=400)
    if len(body) > BODY_MAX_CHARS:
        return JsonResponse({"error": f"The Markdown is longer than {BODY_MAX_CHARS} characters."}, status=400)
    try:
        front, _ = split_front_matter(body)
        html = _markdown_html(body)
    except ValueError as exc:
        return JsonResponse({"error": f"The metadata block at the top cannot be read: {exc}."}, status=400)
    return JsonResponse({"html": str(html), "front_matter": sorted(front)})
