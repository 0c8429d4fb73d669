"""POST /alerts/<id>/ask: "Ask about this alert" opens (or reopens) the user's chat session about the alert.

Every logged-in user may see every alert (alerts carry no RBAC; what each user sees of an alert's runbooks
is filtered in alerts/ask.py), so the only refusals are: not logged in (login page), not POST (405), no
CSRF token (403), no such alert (404).
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from alerts.ask import alert_session_open
from alerts.models import Alert


@login_required
@require_POST
def alert_ask(request, alert_id: int):
    alert = get_object_or_404(Alert, pk=alert_id)
    session = alert_session_open(alert=alert, user=request.user)
    return redirect("chat_session", session_id=session.pk)
