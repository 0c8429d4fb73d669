"""Reads for the chat: a user's sessions, the history sent to the LLM, the conversation to display."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from aihelper.chat.answers import answer_html
from aihelper.chat.models import ChatMessage, ChatSession, MessageRole
from audit.details import ActionDetails, PresentedSolution
from audit.selectors import audit_log_details
from runbooks.selectors import visible_runbooks

HISTORY_MAX_MESSAGES = 40
SESSIONS_MAX = 50


def chat_session_list(*, user) -> QuerySet[ChatSession]:
    """The user's own sessions, most recently active first."""
    return ChatSession.objects.filter(user=user).order_by("-updated_at")[:SESSIONS_MAX]


def chat_session_get(*, user, session_id: uuid.UUID | str) -> ChatSession:
    """The session if it belongs to ``user``; raises ChatSession.DoesNotExist otherwise (-> 404)."""
    return ChatSession.objects.get(pk=session_id, user=user)


def stored_runbook_id(value: str) -> uuid.UUID | None:
    """A runbook id read back from a stored answer; None for anything else (an id written by hand into an old
    audit log), which is then simply not in play and never a 500."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


HIDDEN_ANSWER = "(An earlier answer about a runbook you can no longer see is left out.)"


def chat_history(
    *, conversation: ConversationSoFar, user=None, known_visible: Collection[str] = ()
) -> list[tuple[str, str]]:
    """The session's last messages as (role, markdown), oldest first, for the prompt. With ``user``, an answer
    that presented a runbook the user may no longer see is replaced by a note: its title, steps and commands
    never reach the LLM again. ``known_visible``: runbook ids this request already found visible to ``user``
    (the turn's search results); only the others are checked (0 or 1 query)."""
    presented = {
        index: {solution.id for solution in details.runbook_solutions}
        for index, (_, _, details) in enumerate(conversation.messages)
        if details is not None
    }
    hidden: set[str] = set()
    if user is not None and presented:
        ids = set().union(*presented.values())
        visible = ids.intersection(known_visible)
        valid = [pk for pk in ids - visible if stored_runbook_id(pk)]  # anything else in an old row is hidden
        if valid:
            visible |= {str(pk) for pk in visible_runbooks(user).filter(pk__in=valid).values_list("pk", flat=True)}
        hidden = ids - visible
    return [
        (role, HIDDEN_ANSWER if presented.get(index, set()) & hidden else content)
        for index, (role, content, _) in reversed(list(enumerate(conversation.messages)))
    ]


@dataclass(frozen=True)
class MessageView:
    id: int
    role: str
    content: str
    html: str
    created_at: datetime
    audit_log_id: uuid.UUID | None = None
    solutions: tuple[PresentedSolution, ...] = ()
    presentation_strategy: str = ""
    degraded: bool = False
    provider: str = ""
    # Secrets removed from the engineer's message before it was stored or sent (user messages).
    redacted_count: int = 0


def chat_messages_display(*, session: ChatSession) -> list[MessageView]:
    """Every message of the session rendered as at answer time (links carry their rank), less the cards of
    runbooks its owner may no longer see (a group lost since: RBAC holds for what was shown before, too);
    2 queries."""
    views = []
    messages = list(
        ChatMessage.objects.filter(session=session).select_related("audit_log").order_by("created_at", "id")
    )
    shown = {
        solution.id
        for message in messages
        if message.role == MessageRole.ASSISTANT and message.audit_log is not None
        for solution in audit_log_details(message.audit_log).runbook_solutions
    }
    visible = {
        str(pk) for pk in visible_runbooks(session.user).filter(pk__in=shown).values_list("pk", flat=True)
    } if shown else set()
    for message in messages:
        audit_log = message.audit_log
        if message.role != MessageRole.ASSISTANT or audit_log is None:
            redactions = audit_log_details(audit_log).redactions if audit_log is not None else ()
            views.append(
                MessageView(
                    id=message.pk, role=message.role, content=message.content, html="",
                    created_at=message.created_at, audit_log_id=message.audit_log_id,
                    redacted_count=len(redactions),
                )
            )
            continue
        details = audit_log_details(audit_log)
        html, _ = answer_html(markdown=message.content, ranks=details.ranks(), audit_log_id=audit_log.pk)
        views.append(
            MessageView(
                id=message.pk,
                role=message.role,
                content=message.content,
                html=html,
                created_at=message.created_at,
                audit_log_id=audit_log.pk,
                solutions=tuple(
                    solution for solution in details.solutions if not solution.is_runbook or solution.id in visible
                ),
                presentation_strategy=details.presentation_strategy,
                degraded=audit_log.degraded,
                provider=audit_log.llm_provider,
            )
        )
    return views


CONTEXT_TURNS = 4


@dataclass(frozen=True)
class PastTurn:
    """One earlier exchange of the session as retrieval needs it: the engineer's message (secrets already
    replaced) and what the answer presented."""

    query: str
    solutions: tuple[PresentedSolution, ...]


@dataclass(frozen=True)
class ConversationSoFar:
    """The session's last messages, read once for the turn's retrieval (``past_turns``) and its prompt
    (``chat_history``)."""

    # Newest first: role, markdown, and an answer's details (None for the engineer's messages).
    messages: tuple[tuple[str, str, ActionDetails | None], ...] = ()
    past_turns: tuple[PastTurn, ...] = ()  # the last answered exchanges, newest first


def conversation_so_far(*, session: ChatSession | None, turns: int = CONTEXT_TURNS) -> ConversationSoFar:
    """The last HISTORY_MAX_MESSAGES messages of the session and, among them, the last ``turns`` answered
    exchanges (an answer whose audit log is gone, e.g. purged, is not a turn: a session whose last 40 messages
    hold fewer than ``turns`` answers gives fewer turns); 1 query."""
    if session is None:
        return ConversationSoFar()
    rows = (
        ChatMessage.objects.filter(session=session)
        .order_by("-created_at", "-id")
        .values_list("role", "content", "audit_log_id", "audit_log__query", "audit_log__ai_action_details")
    )[:HISTORY_MAX_MESSAGES]
    messages, past = [], []
    for role, content, audit_log_id, query, details in rows:
        answered = role == MessageRole.ASSISTANT and audit_log_id is not None
        parsed = ActionDetails.from_json(details) if answered else None
        messages.append((role, content, parsed))
        if parsed is not None and len(past) < turns:
            past.append(PastTurn(query=query, solutions=parsed.runbook_solutions))
    return ConversationSoFar(messages=tuple(messages), past_turns=tuple(past))
