"""The one path from an engineer's message to a recorded answer, for the chat page, widget and API.

message -> retrieval (RBAC-filtered) -> recommended runbooks with ranks -> strategy -> prompt ->
LLM (streamed; retrieval-only answer if it fails) -> unpresented runbook links removed -> one
transaction: session, both ChatMessages, AuditLog and one ``presented`` event per runbook ->
sanitised HTML whose runbook links carry the audit log id and rank.

No database transaction is held while the LLM answers.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from aihelper.chat.answers import answer_html, answer_links_filter, runbook_url
from aihelper.chat.llm import LLMError, LLMProvider, LLMReply, llm_provider_get, retrieval_answer
from aihelper.chat.models import ChatMessage, ChatSession, MessageRole
from aihelper.chat.prompts import Prompt, RunbookContext, prompt_build
from aihelper.chat.retrieval import runbooks_find
from aihelper.chat.selectors import chat_history, chat_session_get
from aihelper.core.redaction import redact, redact_json
from analytics.services.experiments import experiment_assignment_for
from audit.details import ActionDetails, PresentedSolution, RetrievalSummary
from audit.models import AuditLog, EventSource
from audit.services.store import audit_log_create
from runbooks.access import runbook_can_execute
from runbooks.search import SearchConfig, SearchOutcome

logger = logging.getLogger(__name__)

SESSION_TITLE_CHARS = 80


class SessionNotFound(Exception):
    """No session with that id belongs to this user."""


@dataclass(frozen=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True)
class AnswerReset:
    """The streamed text so far is void (the LLM failed mid-answer); the final answer replaces it."""

    reason: str


@dataclass
class ChatAnswer:
    session: ChatSession
    audit_log: AuditLog
    answer_markdown: str
    answer_html: str
    # The engineer's message as stored and sent on (secrets replaced), and what was replaced.
    user_message: str
    redactions: tuple[str, ...]
    solutions: tuple[PresentedSolution, ...]
    presentation_strategy: str
    degraded: bool
    provider: str
    error: str = ""
    links_removed: int = 0
    timings_ms: dict = field(default_factory=dict)


def _solutions(*, outcome: SearchOutcome, user) -> tuple[PresentedSolution, ...]:
    recommended = outcome.recommended
    group_ids = set(user.groups.values_list("pk", flat=True)) if recommended else set()
    return tuple(
        PresentedSolution(
            rank=result.rank,
            type="runbook",
            id=str(result.runbook.pk),
            slug=result.runbook.slug,
            title=result.runbook.name,
            confidence=result.confidence,
            confidence_components=result.components,
            success_rate=result.success_rate,
            success_samples=result.success_samples,
            can_execute=runbook_can_execute(runbook=result.runbook, user=user, user_group_ids=group_ids),
            url=runbook_url(result.runbook.pk),
        )
        for result in recommended
    )


def _runbook_contexts(*, outcome: SearchOutcome, solutions: tuple[PresentedSolution, ...]) -> list[RunbookContext]:
    by_id = {str(result.runbook.pk): result.runbook for result in outcome.recommended}
    return [
        RunbookContext(
            solution=solution,
            description=by_id[solution.id].description,
            steps=tuple(by_id[solution.id].steps or ()),
        )
        for solution in solutions
    ]


def chat_answer_stream(
    *,
    user,
    message: str,
    session_id: uuid.UUID | str | None = None,
    page_context: dict | None = None,
    source: str = EventSource.DIRECT,
    provider: LLMProvider | None = None,
    search_config: SearchConfig | None = None,
) -> Iterator[AnswerDelta | AnswerReset | ChatAnswer]:
    """Check the session now (raises SessionNotFound), then return the events of the answer:
    text deltas, possibly one reset, and finally the recorded ``ChatAnswer``."""
    session = None
    if session_id:
        try:
            session = chat_session_get(user=user, session_id=session_id)
        except ChatSession.DoesNotExist:
            raise SessionNotFound(str(session_id)) from None
    # The edge: nothing after this line sees the secrets an engineer pasted (docs/security.md).
    redacted = redact(message.strip())
    context, context_kinds = redact_json(page_context or {})
    return _answer_events(
        user=user,
        message=redacted.text,
        redactions=redacted.kinds + context_kinds,
        session=session,
        page_context=context,
        source=source,
        provider=provider or llm_provider_get(),
        search_config=search_config,
    )


def chat_answer(**kwargs) -> ChatAnswer:
    """The same answer without streaming (the JSON API)."""
    for event in chat_answer_stream(**kwargs):
        if isinstance(event, ChatAnswer):
            return event
    raise RuntimeError("the answer stream ended without an answer")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _answer_events(
    *,
    user,
    message: str,
    redactions: tuple[str, ...],
    session: ChatSession | None,
    page_context: dict,
    source: str,
    provider: LLMProvider,
    search_config: SearchConfig | None,
) -> Iterator[AnswerDelta | AnswerReset | ChatAnswer]:
    timings: dict = {}
    started = time.perf_counter()
    # An explicit config (tests, benchmarks) wins; otherwise the user's experiment variant applies.
    assignment = experiment_assignment_for(user=user) if search_config is None else None
    config = search_config or SearchConfig.from_settings(**(assignment.overrides if assignment else {}))
    outcome = runbooks_find(query=message, user=user, limit=config.max_recommended, config=config)
    timings["retrieval"] = _ms(started)

    started = time.perf_counter()
    solutions = _solutions(outcome=outcome, user=user)
    prompt: Prompt = prompt_build(
        question=outcome.query,
        history=chat_history(session=session),
        runbooks=_runbook_contexts(outcome=outcome, solutions=solutions),
        strategy=outcome.strategy,
    )
    timings["prompt"] = _ms(started)

    started = time.perf_counter()
    reply: LLMReply | None = None
    error = ""
    streamed = False
    try:
        for chunk in provider.stream(prompt=prompt):
            if isinstance(chunk, LLMReply):
                reply = chunk
            else:
                streamed = True
                yield AnswerDelta(chunk)
        if reply is None:
            raise LLMError("malformed reply: the provider returned no answer")
    except LLMError as exc:
        error = exc.reason
    except Exception as exc:  # noqa: BLE001 - an LLM failure must never become a 500
        logger.exception("LLM provider %s failed", provider.name)
        error = f"unexpected error: {type(exc).__name__}"
    degraded = bool(error)
    if degraded:
        logger.warning("degraded answer (%s): %s", provider.name, error)
        if streamed:
            yield AnswerReset(error)
        markdown = retrieval_answer(prompt=prompt)
    else:
        markdown = reply.text
    timings["llm"] = _ms(started)

    started = time.perf_counter()
    markdown, links_removed = answer_links_filter(markdown=markdown, presented_ids={s.id for s in solutions})
    timings["render"] = _ms(started)

    started = time.perf_counter()
    details = ActionDetails(
        solutions=solutions,
        presentation_strategy=outcome.strategy,
        threshold=outcome.threshold,
        experiment=assignment.experiment if assignment else "",
        variant=assignment.variant if assignment else "",
        retrieval=RetrievalSummary(
            timings_ms=outcome.timings_ms,
            degraded=outcome.degraded,
            degraded_reason=outcome.degraded_reason,
            query_truncated=outcome.truncated,
            candidates=len(outcome.results),
        ),
        links_removed=links_removed,
        page_context=page_context,
        prompt_messages=len(prompt.messages),
        redactions=redactions,
    )
    # Keyword-only retrieval (embedding model down) also marks the answer degraded, with the reason.
    answer_degraded = degraded or outcome.degraded
    answer_error = "; ".join(reason for reason in (error, outcome.degraded_reason) if reason)
    with transaction.atomic():
        if session is None:
            session = ChatSession.objects.create(user=user, title=message[:SESSION_TITLE_CHARS])
        audit_log = audit_log_create(
            user=user,
            session=session,
            query=message,
            response=markdown,
            details=details,
            source=source,
            llm_provider=provider.name,
            llm_model=(reply.model if reply else provider.model) or "",
            input_tokens=reply.input_tokens if reply else None,
            output_tokens=reply.output_tokens if reply else None,
            latency_ms=reply.latency_ms if reply else int(timings["llm"]),
            degraded=answer_degraded,
            error=answer_error,
            page_context=page_context,
        )
        ChatMessage.objects.bulk_create(
            [
                ChatMessage(session=session, role=MessageRole.USER, content=message, audit_log=audit_log),
                ChatMessage(session=session, role=MessageRole.ASSISTANT, content=markdown, audit_log=audit_log),
            ]
        )
        ChatSession.objects.filter(pk=session.pk).update(updated_at=timezone.now())
    timings["write"] = _ms(started)

    started = time.perf_counter()
    html, unwrapped = answer_html(
        markdown=markdown, ranks=details.ranks(), audit_log_id=audit_log.pk
    )
    timings["render"] = round(timings["render"] + _ms(started), 2)
    # Timings and outcome only: never the question, the answer or anything secret at INFO.
    logger.info(
        "chat answer",
        extra={
            "audit_log_id": str(audit_log.pk),
            "provider": provider.name,
            "strategy": outcome.strategy,
            "solutions": len(solutions),
            "degraded": answer_degraded,
            "timings_ms": {**timings, "retrieval_detail": outcome.timings_ms},
            "input_tokens": reply.input_tokens if reply else None,
            "output_tokens": reply.output_tokens if reply else None,
        },
    )
    yield ChatAnswer(
        session=session,
        audit_log=audit_log,
        answer_markdown=markdown,
        answer_html=html,
        user_message=message,
        redactions=redactions,
        solutions=solutions,
        presentation_strategy=outcome.strategy,
        degraded=answer_degraded,
        provider=provider.name,
        error=answer_error,
        links_removed=links_removed + unwrapped,
        timings_ms=timings,
    )
