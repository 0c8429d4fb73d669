"""The one path from an engineer's message to a recorded answer, for the chat page, widget and API.

message -> retrieval (RBAC-filtered) -> recommended runbooks with ranks -> strategy -> prompt ->
LLM (streamed; retrieval-only answer if it fails) -> unpresented runbook links removed -> one
transaction: session, both ChatMessages, AuditLog and one ``presented`` event per runbook ->
sanitised HTML whose runbook links carry the audit log id and rank.

No database transaction is held while the LLM answers, and no thread waits for it: the answer is an
async generator; the database and embedding work before and after the LLM call runs in the request's
own thread (``sync_to_async``, thread-sensitive: Django gives each ASGI request one), and the DB
connection is handed back before the wait. The LLM call needs a slot (llm_gate.py): without one the
answer is the busy answer. A client that goes away cancels the LLM stream; the audit log records the
answer as cut short.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from aihelper.chat.answers import answer_html, answer_links_filter
from aihelper.chat.conversation import TurnSearch, conversation_search
from aihelper.chat.llm import LLMError, LLMProvider, LLMReply, llm_provider_get, retrieval_answer
from aihelper.chat.models import ChatMessage, ChatSession, MessageRole
from aihelper.chat.presenting import presented_solutions, runbook_contexts
from aihelper.chat.prompts import Prompt, prompt_build
from aihelper.chat.selectors import chat_history, chat_session_get, conversation_so_far
from aihelper.chat.services.llm_gate import LLMBusy, llm_gate
from aihelper.chat.services.sync_steps import (
    BUSY,
    FINISHING,
    HOLDING,
    STARTING,
    db_connections_release,
    run_to_end,
    sync_step,
)
from aihelper.core import metrics
from aihelper.core.redaction import redact, redact_json
from analytics.services.experiments import experiment_assignment_for
from audit.details import ActionDetails, ConversationTurn, PresentedSolution, RetrievalSummary
from audit.models import AuditLog, EventSource
from audit.services.store import audit_log_create
from runbooks.embeddings import query_embedding_prefetch
from runbooks.search import SearchConfig, SearchOutcome

logger = logging.getLogger(__name__)

SESSION_TITLE_CHARS = 80
BUSY_NOTE = (
    "**The assistant is busy** (many engineers are asking at once), so this answer lists the matching "
    "runbooks without an AI summary. Ask again in a minute for a full answer.\n\n"
)


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
    turn: ConversationTurn = field(default_factory=ConversationTurn)
    error: str = ""
    links_removed: int = 0
    timings_ms: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Question:
    """The engineer's question after the edge: session checked, secrets replaced."""

    session: ChatSession | None
    message: str
    redactions: tuple[str, ...]
    page_context: dict
    # An explicit config (tests, benchmarks) wins, else the user's experiment variant's: decided before the query
    # embedding, which clips the text as the search will.
    config: SearchConfig
    experiment: str = ""
    variant: str = ""


@dataclass(frozen=True)
class _Prepared:
    """Everything decided before the LLM is called."""

    search: TurnSearch
    solutions: tuple[PresentedSolution, ...]
    prompt: Prompt
    experiment: str
    variant: str
    timings: dict

    @property
    def outcome(self) -> SearchOutcome:
        return self.search.outcome


@dataclass(frozen=True)
class _LLMResult:
    reply: LLMReply | None
    error: str
    degraded_reason: str  # metrics label: "" | "llm_error" | "busy"


def _question(
    *, user, message: str, session_id, page_context: dict | None, search_config: SearchConfig | None
) -> _Question:
    session = None
    if session_id:
        try:
            session = chat_session_get(user=user, session_id=session_id)
        except ChatSession.DoesNotExist:
            raise SessionNotFound(str(session_id)) from None
    # The edge: nothing after this line sees the secrets an engineer pasted (docs/security.md).
    redacted = redact(message.strip())
    context, context_kinds = redact_json(page_context or {})
    assignment = experiment_assignment_for(user=user) if search_config is None else None
    config = search_config or SearchConfig.from_settings(**(assignment.overrides if assignment else {}))
    # The connection this request used so far (its authentication, the session) goes back before the answer
    # waits for its turn at the synchronous steps, which can take seconds under load: with the pool, waiting
    # answers holding connections would leave none for a click or a page.
    db_connections_release()
    return _Question(session=session, message=redacted.text, redactions=redacted.kinds + context_kinds,
                     page_context=context, config=config, experiment=assignment.experiment if assignment else "",
                     variant=assignment.variant if assignment else "")


async def achat_answer_stream(
    *,
    user,
    message: str,
    session_id: uuid.UUID | str | None = None,
    page_context: dict | None = None,
    source: str = EventSource.DIRECT,
    provider: LLMProvider | None = None,
    search_config: SearchConfig | None = None,
) -> AsyncIterator[AnswerDelta | AnswerReset | ChatAnswer]:
    """Check the session now (raises SessionNotFound), then return the events of the answer:
    text deltas, possibly one reset, and finally the recorded ``ChatAnswer``."""
    question = await sync_to_async(_question)(
        user=user, message=message, session_id=session_id, page_context=page_context, search_config=search_config
    )
    return _answer_events(user=user, question=question, source=source, provider=provider or llm_provider_get())


async def achat_answer(**kwargs) -> ChatAnswer:
    """The same answer without streaming (the JSON API)."""
    async for event in await achat_answer_stream(**kwargs):
        if isinstance(event, ChatAnswer):
            return event
    raise RuntimeError("the answer stream ended without an answer")


async def _all_events(**kwargs) -> list:
    return [event async for event in await achat_answer_stream(**kwargs)]


def chat_answer_stream(**kwargs) -> Iterator[AnswerDelta | AnswerReset | ChatAnswer]:
    """For synchronous callers (commands, benchmarks, tests): the events of one whole answer, in order."""
    return iter(run_to_end(_all_events, **kwargs))


def chat_answer(**kwargs) -> ChatAnswer:
    """The same answer without streaming, for synchronous callers."""
    for event in chat_answer_stream(**kwargs):
        if isinstance(event, ChatAnswer):
            return event
    raise RuntimeError("the answer stream ended without an answer")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _prepare(*, user, question: _Question, asked: float) -> _Prepared:
    started = time.perf_counter()
    # How long the step waited for its turn (sync_steps.StepGate): queueing under load, in the answer's log line.
    timings: dict = {"queued": round((started - asked) * 1000, 2)}
    config = question.config
    conversation = conversation_so_far(session=question.session)
    search = conversation_search(message=question.message, user=user, config=config, past=conversation.past_turns)
    timings["retrieval"] = _ms(started)

    started = time.perf_counter()
    solutions = presented_solutions(search=search, user=user)
    prompt: Prompt = prompt_build(
        # What the engineer typed (clipped like the search), not a widened query: that is in the audit only.
        question=question.message[: config.max_query_chars],
        history=chat_history(conversation=conversation, user=user,
                             known_visible={str(result.runbook.pk) for result in search.outcome.results}),
        runbooks=runbook_contexts(search=search, solutions=solutions),
        strategy=search.outcome.strategy,
        turn=search.turn,
        previous_title=search.previous_title,
    )
    timings["prompt"] = _ms(started)
    db_connections_release()
    return _Prepared(
        search=search, solutions=solutions, prompt=prompt, timings=timings,
        experiment=question.experiment, variant=question.variant,
    )


async def _provider_chunks(provider, prompt: Prompt) -> AsyncIterator[str | LLMReply]:
    if hasattr(provider, "astream"):
        async for chunk in provider.astream(prompt=prompt):
            yield chunk
        return
    # A provider with only a synchronous ``stream`` (test doubles): each step runs in a worker thread.
    chunks = provider.stream(prompt=prompt)
    done = object()
    while (chunk := await sync_to_async(next, thread_sensitive=False)(chunks, done)) is not done:
        yield chunk


async def _answer_events(
    *,
    user,
    question: _Question,
    source: str,
    provider: LLMProvider,
) -> AsyncIterator[AnswerDelta | AnswerReset | ChatAnswer]:
    # The LLM slot is asked for while the runbooks are retrieved: when none is free, the short wait in the
    # queue (LLM_QUEUE_WAIT_SECONDS) overlaps the retrieval instead of adding to the busy answer's time.
    reservation = llm_gate.reserve(user_key=user.pk)
    try:
        # The message's query vector first, outside the step gate: the questions a worker gets at the same
        # moment share one model run (runbooks.embeddings.QueryBatcher); the search then finds it cached.
        started = time.perf_counter()
        await query_embedding_prefetch(question.message.strip()[: question.config.max_query_chars])
        embedded_ms = _ms(started)
        prepared = await sync_step(
            _prepare, priority=lambda: HOLDING if reservation.granted else BUSY if reservation.busy else STARTING,
            user=user, question=question, asked=time.perf_counter(),
        )
        prepared.timings["embedded"] = embedded_ms
    except BaseException:
        await asyncio.shield(reservation.cancel())
        raise
    started = time.perf_counter()
    reply: LLMReply | None = None
    streamed: list[str] = []
    error, reason = "", ""
    try:
        async with reservation:
            async for chunk in _provider_chunks(provider, prepared.prompt):
                if isinstance(chunk, LLMReply):
                    reply = chunk
                else:
                    streamed.append(chunk)
                    yield AnswerDelta(chunk)
            if reply is None:
                raise LLMError("malformed reply: the provider returned no answer")
    except LLMBusy as exc:
        error, reason = exc.reason, "busy"
    except LLMError as exc:
        error, reason = exc.reason, "llm_error"
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away (Django cancels the request's task; or the response is closed mid-stream):
        # leaving the ``async with`` of the SDK stream above closed the HTTP stream, so generation stopped.
        metrics.LLM_CALL_SECONDS.labels(provider=provider.name, outcome="cancelled").observe(
            time.perf_counter() - started
        )
        await asyncio.shield(sync_step(
            _record_cut_short, priority=lambda: FINISHING, user=user, question=question, prepared=prepared,
            source=source, provider=provider, partial="".join(streamed), llm_ms=_ms(started),
        ))
        raise
    except Exception as exc:  # noqa: BLE001 - an LLM failure must never become a 500
        logger.exception("LLM provider %s failed", provider.name)
        error, reason = f"unexpected error: {type(exc).__name__}", "llm_error"
    if reason != "busy":
        metrics.LLM_CALL_SECONDS.labels(provider=provider.name, outcome="error" if error else "ok").observe(
            time.perf_counter() - started
        )
    if reason == "llm_error":
        metrics.LLM_ERRORS.labels(provider=provider.name, kind=metrics.error_kind(error)).inc()
    if error:
        logger.warning("degraded answer (%s): %s", provider.name, error)
        if streamed:
            yield AnswerReset(error)
    result = _LLMResult(reply=reply, error=error, degraded_reason=reason)
    yield await sync_step(
        _record, user=user, question=question, prepared=prepared, source=source, provider=provider, result=result,
        llm_ms=_ms(started), priority=lambda: FINISHING, asked=time.perf_counter(),
    )


def _details(*, question: _Question, prepared: _Prepared, solutions, links_removed: int) -> ActionDetails:
    outcome = prepared.outcome
    return ActionDetails(
        solutions=solutions,
        presentation_strategy=outcome.strategy,
        threshold=outcome.threshold,
        experiment=prepared.experiment,
        variant=prepared.variant,
        retrieval=RetrievalSummary(
            timings_ms=outcome.timings_ms,
            degraded=outcome.degraded,
            degraded_reason=outcome.degraded_reason,
            query_truncated=outcome.truncated,
            candidates=len(outcome.results),
        ),
        links_removed=links_removed,
        page_context=question.page_context,
        prompt_messages=len(prepared.prompt.messages),
        redactions=question.redactions,
        conversation=prepared.search.turn,
    )


def _record_cut_short(
    *, user, question: _Question, prepared: _Prepared, source: str, provider: LLMProvider, partial: str,
    llm_ms: float,
) -> None:
    """The audit log of an answer whose reader left mid-stream: what was streamed, nothing presented (the
    runbook cards come only with the finished answer), no chat messages; ``degraded`` with the reason."""
    markdown, links_removed = answer_links_filter(
        markdown=partial, presented_ids={s.id for s in prepared.solutions}
    )
    details = _details(question=question, prepared=prepared, solutions=(), links_removed=links_removed)
    error = f"cut short: the client disconnected after {len(partial)} characters of the answer"
    with transaction.atomic():
        audit_log = audit_log_create(
            user=user, session=question.session, query=question.message, response=markdown, details=details,
            source=source, llm_provider=provider.name, llm_model=provider.model or "", latency_ms=int(llm_ms),
            degraded=True, error=error, page_context=question.page_context,
        )
    metrics.ANSWERS.labels(strategy=prepared.outcome.strategy, degraded_reason="cut_short").inc()
    logger.info("chat answer cut short", extra={"audit_log_id": str(audit_log.pk), "provider": provider.name,
                                                "streamed_chars": len(partial)})


def _record(
    *, user, question: _Question, prepared: _Prepared, source: str, provider: LLMProvider, result: _LLMResult,
    llm_ms: float, asked: float | None = None,
) -> ChatAnswer:
    outcome, solutions, prompt, reply = prepared.outcome, prepared.solutions, prepared.prompt, result.reply
    timings = {**prepared.timings, "llm": llm_ms}
    if asked is not None:
        timings["queued_write"] = _ms(asked)
    if result.degraded_reason == "busy":
        markdown = BUSY_NOTE + retrieval_answer(prompt=prompt)
    elif result.error:
        markdown = retrieval_answer(prompt=prompt)
    else:
        markdown = reply.text

    started = time.perf_counter()
    markdown, links_removed = answer_links_filter(markdown=markdown, presented_ids={s.id for s in solutions})
    timings["render"] = _ms(started)

    started = time.perf_counter()
    details = _details(question=question, prepared=prepared, solutions=solutions, links_removed=links_removed)
    # Keyword-only retrieval (embedding model down) also marks the answer degraded, with the reason.
    answer_degraded = bool(result.error) or outcome.degraded
    answer_error = "; ".join(reason for reason in (result.error, outcome.degraded_reason) if reason)
    session = question.session
    message = question.message
    with transaction.atomic():
        if session is None:
            session = ChatSession.objects.create(user=user, title=message[:SESSION_TITLE_CHARS])
        audit_log = audit_log_create(
            user=user, session=session, query=message, response=markdown, details=details, source=source,
            llm_provider=provider.name, llm_model=(reply.model if reply else provider.model) or "",
            input_tokens=reply.input_tokens if reply else None,
            output_tokens=reply.output_tokens if reply else None,
            latency_ms=reply.latency_ms if reply else int(llm_ms),
            degraded=answer_degraded, error=answer_error, page_context=question.page_context,
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
    html, unwrapped = answer_html(markdown=markdown, ranks=details.ranks(), audit_log_id=audit_log.pk)
    timings["render"] = round(timings["render"] + _ms(started), 2)
    metrics.ANSWERS.labels(
        strategy=outcome.strategy,
        degraded_reason=result.degraded_reason or ("retrieval" if outcome.degraded else "none"),
    ).inc()
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
    return ChatAnswer(
        session=session,
        audit_log=audit_log,
        answer_markdown=markdown,
        answer_html=html,
        user_message=message,
        redactions=question.redactions,
        solutions=solutions,
        presentation_strategy=outcome.strategy,
        turn=prepared.search.turn,
        degraded=answer_degraded,
        provider=provider.name,
        error=answer_error,
        links_removed=links_removed + unwrapped,
        timings_ms=timings,
    )
