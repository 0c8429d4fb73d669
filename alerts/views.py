"""The alerts page (docs/alerts.md, "Where engineers see it"): one view; the htmx poll gets only the list partial."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRedirect

from alerts.presenting import alerts_page_build

# The id of the element that polls: its requests get the list partial, anything else the whole page.
LIVE_TARGET = "alerts-live"


@require_GET
def alert_list_page(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        # A poll after the session expired: send the whole page to the login form, not the form into the list.
        login = redirect_to_login(reverse("alerts:list"))
        return HttpResponseClientRedirect(login.url) if request.htmx else login
    resolved_all = request.GET.get("resolved") == "all"
    context = {
        "page": alerts_page_build(user=request.user, resolved_all=resolved_all),
        "resolved_all": resolved_all,
        "poll_url": request.get_full_path(),
    }
    if request.htmx and request.htmx.target == LIVE_TARGET:
        return render(request, "alerts/list.html#alert-list", context)
    return render(request, "alerts/list.html", context)
