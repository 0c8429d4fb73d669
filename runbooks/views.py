from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from aihelper.rendering import render_markdown
from runbooks.selectors import InvalidQuery, SearchConfig, runbook_search, visible_runbooks

RESULT_LIMIT = 10


@login_required
@require_GET
def search(request):
    """One page; htmx requests (live search as you type) get only the results partial."""
    query = request.GET.get("q")
    context = {"query": query or "", "outcome": None, "error": "", "searched": query is not None}
    status = 200
    if query is not None:
        try:
            context["outcome"] = runbook_search(
                query=query, user=request.user, limit=RESULT_LIMIT, config=SearchConfig.from_settings()
            )
        except InvalidQuery as exc:
            context["error"] = str(exc)
            status = 400
    template = "runbooks/search.html#results" if request.htmx else "runbooks/search.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def detail(request, pk):
    runbook = get_object_or_404(visible_runbooks(request.user), pk=pk)
    # render_markdown parses without raw HTML and sanitises with an allow-list (aihelper/rendering.py).
    body_html = mark_safe(render_markdown(runbook.body_markdown))  # noqa: S308
    return render(request, "runbooks/detail.html", {"runbook": runbook, "body_html": body_html})
