""" "Draft a runbook" from the Gaps page (Admin → Analytics → Gaps): staff only, POST only. Success: back to
the Gaps page of the same range, which shows the draft on its group. Anything wrong: 400 (503 when the LLM
is busy) with the reason in words and a link back."""

from __future__ import annotations

import uuid

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from aihelper.chat.services.gap_drafts import DraftRefused, GapNotFound, gap_draft_create
from aihelper.chat.services.llm_gate import LLMBusy
from analytics.services.parameters import InvalidParameters, analytics_parameters_parse


def _refused(request: HttpRequest, message: str, *, status: int = 400) -> HttpResponse:
    context = {"message": message, "back": reverse("admin:analytics_gaps")}
    return TemplateResponse(request, "analytics/gap_draft_error.html", context, status=status)


@staff_member_required
@require_POST
def gap_draft(request: HttpRequest) -> HttpResponse:
    query = {key: request.POST.get(key, "") for key in ("start", "end")}
    try:
        parameters = analytics_parameters_parse(query=query)
    except InvalidParameters as exc:
        return _refused(request, f"No draft: {exc.message}")
    try:
        group_key = uuid.UUID(request.POST.get("group", "")[:40])
    except ValueError:
        return _refused(request, "No draft: group must be the id of a group on the Gaps page.")
    try:
        gap_draft_create(user=request.user, start=parameters.start, end=parameters.end, group_key=group_key)
    except (GapNotFound, DraftRefused) as exc:
        return _refused(request, f"No draft: {exc}")
    except LLMBusy:
        return _refused(request, "No draft: the LLM is busy with other answers; try again in a minute.", status=503)
    back = urlencode({**{key: value for key, value in query.items() if value}, "drafted": "1"})
    response = HttpResponseRedirect(f"{reverse('admin:analytics_gaps')}?{back}")
    response.status_code = 303  # See Other: the Gaps page is fetched with GET
    return response
