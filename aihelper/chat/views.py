"""Chat pages: the page itself (full or htmx partial), the streamed answer, a no-JS fallback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import APIException, ValidationError

from aihelper.chat.apis import ChatQueryInputSerializer, ChatThrottle
from aihelper.chat.models import ChatSession
from aihelper.chat.retrieval import runbooks_find
from aihelper.chat.selectors import MessageView, chat_messages_display, chat_session_get, chat_session_list
from aihelper.chat.services.orchestrator import (
    AnswerDelta,
    AnswerReset,
    ChatAnswer,
    SessionNotFound,
    achat_answer,
    achat_answer_stream,
)
from aihelper.chat.streaming import AsyncStreamingResponse
from aihelper.core.api_errors import api_error_response, json_view
from aihelper.core.api_limits import json_body_parse
from aihelper.core.middleware import current_request_id
from audit.models import EventSource
from runbooks.search import InvalidQuery, SearchConfig

logger = logging.getLogger(__name__)

# What the page script needs of each presented solution when the answer is done.
STREAM_SOLUTION_FIELDS = ("rank", "id", "title", "confidence", "can_execute", "url", "carried_over")
STREAM_SOURCES = {"chat_page": EventSource.CHAT_PAGE, "widget": EventSource.WIDGET}


def _answer_view(answer: ChatAnswer) -> MessageView:
    return MessageView(
        id=0,
        role="assistant",
        content=answer.answer_markdown,
        html=answer.answer_html,
        created_at=answer.audit_log.created_at,
        audit_log_id=answer.audit_log.pk,
        solutions=answer.solutions,
        presentation_strategy=answer.presentation_strategy,
        degraded=answer.degraded,
        provider=answer.provider,
    )


def _question_view(answer: ChatAnswer) -> MessageView:
    return MessageView(
        id=0,
        role="user",
        content=answer.user_message,
        html="",
        created_at=answer.audit_log.created_at,
        audit_log_id=answer.audit_log.pk,
        redacted_count=len(answer.redactions),
    )


@login_required
@require_GET
def chat_page(request: HttpRequest, session_id=None) -> HttpResponse:
    session = None
    if session_id is not None:
        try:
            session = chat_session_get(user=request.user, session_id=session_id)
        except ChatSession.DoesNotExist:
            raise Http404("No such chat session.") from None
    context = {
        "chat_session": session,
        "chat_messages": chat_messages_display(session=session) if session else [],
        "sessions": chat_session_list(user=request.user),
    }
    if request.htmx:
        return render(request, "aihelper/chat.html#conversation", context)
    return render(request, "aihelper/chat.html", context)


@login_required
@require_GET
def chat_sessions(request: HttpRequest) -> HttpResponse:
    context = {"sessions": chat_session_list(user=request.user), "current_id": request.GET.get("current", "")}
    return render(request, "aihelper/chat.html#session-list", context)


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _done_event(request: HttpRequest, answer: ChatAnswer) -> str:
    html = render_to_string(
        "aihelper/messages.html#assistant-message", {"message": _answer_view(answer)}, request=request
    )
    user_html = render_to_string(
        "aihelper/messages.html#user-message", {"message": _question_view(answer)}, request=request
    )
    return _sse(
        "done",
        {
            "session_id": str(answer.session.pk),
            "session_url": f"/chat/{answer.session.pk}/",
            "audit_log_id": str(answer.audit_log.pk),
            "html": html,
            # The question as stored (secrets replaced), with the notice when any were.
            "user_html": user_html,
            "redacted": len(answer.redactions),
            "degraded": answer.degraded,
            "provider": answer.provider,
            "presentation_strategy": answer.presentation_strategy,
            "solutions": [{key: getattr(s, key) for key in STREAM_SOLUTION_FIELDS} for s in answer.solutions],
        },
    )


async def _stream_events(request: HttpRequest, events: AsyncIterator) -> AsyncIterator[str]:
    # The body is produced after the middleware returned: carry the request id into its log lines.
    token = current_request_id.set(getattr(request, "request_id", ""))
    try:
        async for event in events:
            if isinstance(event, AnswerDelta):
                yield _sse("delta", {"text": event.text})
            elif isinstance(event, AnswerReset):
                yield _sse("reset", {"reason": "The AI model failed mid-answer; showing the runbook matches instead."})
            elif isinstance(event, ChatAnswer):
                yield await sync_to_async(_done_event)(request, event)
    except Exception:  # noqa: BLE001 - the stream has started: report the failure as an event, not a 500
        logger.exception("chat stream failed")
        yield _sse("error", {"message": "Something went wrong while answering; nothing was saved. Try again."})
    finally:
        current_request_id.reset(token)


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _throttled(request: HttpRequest) -> HttpResponse | None:
    throttle = ChatThrottle()
    if throttle.allow_request(request, None):
        return None
    wait = int(throttle.wait() or 1)
    detail = f"Too many questions; try again in {wait} s."
    return JsonResponse(
        {"error": "throttled", "detail": detail, "retry_after_seconds": wait},
        status=429,
        headers={"Retry-After": str(wait)},
    )


@json_view("POST")
async def chat_stream(request: HttpRequest) -> HttpResponse:
    """POST JSON {message, session_id?, page_context?, source?} -> text/event-stream of
    delta / reset / done / error events; ``done`` carries the sanitised answer HTML with its cards.
    Async: the answer in flight holds no thread; a client that goes away cancels it (docs/chat.md)."""
    # Loaded without a thread hop and set on the request, so nothing below loads it synchronously.
    request.user = await request.auser()
    if not request.user.is_authenticated:
        return JsonResponse({"error": "not_authenticated", "detail": "Log in to use the chat."}, status=401)
    refused = _throttled(request)
    if refused is not None:
        return refused
    try:
        # The same checks as every JSON API; the body's size was limited before this view reads it.
        payload = json_body_parse(request.body)
    except APIException as exc:
        return api_error_response(exc)
    serializer = ChatQueryInputSerializer(data=payload)
    if not serializer.is_valid():
        return api_error_response(ValidationError(serializer.errors))
    data = serializer.validated_data
    try:
        events = await achat_answer_stream(
            user=request.user,
            message=data["message"],
            session_id=data.get("session_id"),
            page_context=data.get("page_context"),
            source=STREAM_SOURCES.get(_text(payload.get("source")), EventSource.CHAT_PAGE),
        )
    except SessionNotFound:
        return JsonResponse({"error": "not_found", "detail": "No such chat session."}, status=404)
    response = AsyncStreamingResponse(_stream_events(request, events), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@login_required
@require_POST
async def chat_send(request: HttpRequest) -> HttpResponse:
    """The form's action without JavaScript: answer, then show the conversation."""
    request.user = await request.auser()
    data = {"message": request.POST.get("message", "")}
    if request.POST.get("session_id"):
        data["session_id"] = request.POST["session_id"]
    serializer = ChatQueryInputSerializer(data=data)
    if not serializer.is_valid():
        return await sync_to_async(_form_errors_page)(request, serializer.errors)
    try:
        answer = await achat_answer(
            user=request.user,
            message=serializer.validated_data["message"],
            session_id=serializer.validated_data.get("session_id"),
            source=EventSource.CHAT_PAGE,
        )
    except SessionNotFound:
        raise Http404("No such chat session.") from None
    return redirect("chat_session", session_id=answer.session.pk)


def _form_errors_page(request: HttpRequest, errors) -> HttpResponse:
    context = {"sessions": chat_session_list(user=request.user), "chat_session": None, "chat_messages": [],
               "form_errors": errors}
    return render(request, "aihelper/chat.html", context, status=400)


RESULT_LIMIT = 10


@login_required
@require_GET
def runbook_search_page(request):
    """One page; htmx requests (live search as you type) get only the results partial."""
    query = request.GET.get("q")
    context = {"query": query or "", "outcome": None, "error": "", "searched": query is not None}
    status = 200
    if query is not None:
        try:
            context["outcome"] = runbooks_find(
                query=query, user=request.user, limit=RESULT_LIMIT, config=SearchConfig.from_settings()
            )
        except InvalidQuery as exc:
            context["error"] = str(exc)
            status = 400
    template = "runbooks/search.html#results" if request.htmx else "runbooks/search.html"
    return render(request, template, context, status=status)
