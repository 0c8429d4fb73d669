"""Ask about this alert: a chat session whose conversation starts from the alert and its runbooks
(docs/alerts.md, "Ask about this alert").

The session is seeded with one exchange, as if the engineer had asked about the alert and been answered:

- a user message describing the alert (its name, status and start, summary and description; secrets
  replaced like any message the engineer types);
- an assistant message listing the alert's recommended runbooks the engineer may see, linked to the audit
  log of the user's alert presentation (the alerts page's; recorded here, exactly as the page records it,
  when this user has not opened the page since the ranking was ready).

The chat's conversation search takes "the runbooks in play" from the last answer's audit log
(``conversation_so_far``), so the first question typed in the session ("how do I fix it quickly?") is a
follow-up about the alert's runbooks, the top one first. One session per (user, alert): asking again
returns it.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from aihelper.chat.answers import runbook_url
from aihelper.chat.models import ChatMessage, ChatSession, MessageRole
from aihelper.core.redaction import redact
from alerts.models import Alert, AlertPresentation, AlertSession, AlertStatus, RecommendationState
from alerts.presenting import alert_presentation_record, alert_view, viewer_ranking, viewer_rules
from alerts.selectors import alerts_by_status
from audit.details import PresentedSolution
from audit.models import AuditLog
from audit.selectors import audit_log_details
from runbooks.search import searchable_runbooks

TITLE_CHARS = 80
TEXT_ANNOTATION_CHARS = 1000
NO_RUNBOOKS = (
    "No runbook you may see is recommended for this alert. Ask your question and the catalogue is searched for it."
)
PENDING = (
    "The runbooks for this alert are still being worked out. Ask your question and the catalogue is searched for it."
)
PROMPT_HINT = 'Ask about this alert, for example "how do I fix it quickly?" or "what does step 2 do?"'


def _annotation(alert: Alert, key: str) -> str:
    value = alert.annotations.get(key) if isinstance(alert.annotations, dict) else None
    return " ".join(value.split())[:TEXT_ANNOTATION_CHARS] if isinstance(value, str) else ""


def alert_question(alert: Alert) -> str:
    """The alert in words, as the engineer's first message of the session (before redaction)."""
    name = alert.alertname or alert.fingerprint
    state = (
        f"resolved, firing from {alert.starts_at:%Y-%m-%d %H:%M %Z} to {alert.ends_at:%Y-%m-%d %H:%M %Z}"
        if alert.status == AlertStatus.RESOLVED and alert.ends_at
        else f"firing since {alert.starts_at:%Y-%m-%d %H:%M %Z}"
    )
    lines = [f"About the alert {name} ({state})."]
    lines += [text for text in (_annotation(alert, "summary"), _annotation(alert, "description")) if text]
    return "\n\n".join(dict.fromkeys(lines))


def alert_presentation_log(*, alert: Alert, user) -> AuditLog | None:
    """The audit log of ``user``'s one presentation of the alert's runbooks (source ``alert``): the alerts
    page's when it exists, else recorded now exactly as the page records it (alerts/presenting.py). None
    while the ranking is not ready or when the user may see none of its runbooks (the page records nothing
    then either)."""
    existing = AlertPresentation.objects.filter(alert=alert, user=user).select_related("audit_log").first()
    if existing is not None:
        return existing.audit_log
    if alert.recommendation_state != RecommendationState.DONE:
        return None
    loaded = alerts_by_status(user=user, status=alert.status).filter(pk=alert.pk).first()
    if loaded is None:
        return None
    rules = viewer_rules(user=user)
    view = alert_view(alert=loaded, ranking=viewer_ranking(alert=loaded, rules=rules, user=user), now=timezone.now())
    if not view.has_visible_runbooks:
        return None
    presentation = alert_presentation_record(user=user, alert=loaded, view=view, rules=rules)
    return None if presentation is None else presentation.audit_log


def alert_runbooks_markdown(solutions: tuple[PresentedSolution, ...]) -> str:
    """The assistant's opening message: the runbooks in rank order, linked (the chat tags the links with
    the audit log and rank, so a click is attributed to the alert presentation)."""
    if not solutions:
        return f"{NO_RUNBOOKS}\n\n{PROMPT_HINT}"
    lines = [
        f"{solution.rank}. [{solution.title or solution.slug}]({solution.url or runbook_url(solution.id)})"
        f" ({round(solution.confidence * 100)} % match)"
        for solution in sorted(solutions, key=lambda solution: solution.rank)
    ]
    heading = "The runbook recommended for this alert:" if len(lines) == 1 else "Runbooks recommended for this alert:"
    return "\n".join([heading, "", *lines, "", PROMPT_HINT])


def _opening_answer(*, alert: Alert, user, audit_log: AuditLog | None) -> str:
    if audit_log is None:
        note = NO_RUNBOOKS if alert.recommendation_state == RecommendationState.DONE else PENDING
        return f"{note}\n\n{PROMPT_HINT}"
    # Only what the user may see now (a presentation may be older than a change of their groups).
    visible = {str(pk) for pk in searchable_runbooks(user).values_list("pk", flat=True)}
    return alert_runbooks_markdown(tuple(s for s in audit_log_details(audit_log).runbook_solutions if s.id in visible))


def alert_session_for(*, alert: Alert, user) -> ChatSession | None:
    """``user``'s session opened from this alert, if any (the newest)."""
    link = (
        AlertSession.objects.filter(alert=alert, session__user=user)
        .select_related("session")
        .order_by("-created_at")
        .first()
    )
    return None if link is None else link.session


@transaction.atomic
def alert_session_open(*, alert: Alert, user) -> ChatSession:
    """The chat session about ``alert`` for ``user``: the existing one, or a new one seeded with the alert
    and its runbooks. The alert row is locked so a double click opens one session."""
    # no_key: the alerts page recording this user's presentation at the same moment checks its foreign key
    # to the alert with FOR KEY SHARE, which a plain FOR UPDATE would block (a deadlock, seen in review).
    Alert.objects.select_for_update(no_key=True).filter(pk=alert.pk).first()
    session = alert_session_for(alert=alert, user=user)
    if session is not None:
        return session
    audit_log = alert_presentation_log(alert=alert, user=user)
    answer = _opening_answer(alert=alert, user=user, audit_log=audit_log)
    name = alert.alertname or alert.fingerprint
    session = ChatSession.objects.create(user=user, title=f"Alert: {name}"[:TITLE_CHARS])
    ChatMessage.objects.bulk_create(
        [
            ChatMessage(
                session=session, role=MessageRole.USER, content=redact(alert_question(alert)).text, audit_log=audit_log
            ),
            ChatMessage(session=session, role=MessageRole.ASSISTANT, content=answer, audit_log=audit_log),
        ]
    )
    AlertSession.objects.create(alert=alert, session=session)
    return session
