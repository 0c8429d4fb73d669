"""Placeholder: "Ask about this alert" (owned by the ask/outcomes work)."""

from django.http import Http404


def alert_ask(request, alert_id: int):
    raise Http404
