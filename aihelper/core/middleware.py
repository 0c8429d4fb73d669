"""Request id for logs, and the documented 503 when the database is down (never a 500 page).

Where a request can reach the database, and what answers an outage there:

* the view, its template response and DRF's authentication: ``DatabaseUnavailableMiddleware.process_exception``
  (DRF APIs answer through ``aihelper.core.api_errors`` with the same body);
* the session and the user: ``AuthenticationMiddleware`` only installs a lazy user, loaded inside the view;
  the session is saved after the view by ``SessionMiddleware`` below, which answers a failed save the same way;
* nothing else may load them: ``RequestIdMiddleware`` logs the user id only when the request already loaded it.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.sessions import middleware as sessions
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject, empty

from aihelper.core.negotiation import wants_json_error

logger = logging.getLogger("aihelper.request")
# The current request's id, added to every log line written while it is handled (aihelper/logjson.py).
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")
RETRY_AFTER_SECONDS = 5
OUTAGE_ERRORS = (OperationalError, InterfaceError)


def _loaded_user_id(request: HttpRequest):
    """The user's id if this request already loaded the user, else None.

    Reading ``request.user`` here would load the session and the user from the database after the
    response was made, outside any outage handling: a 500 and a traceback while the database is down.
    """
    user = getattr(request, "user", None)
    if type(user) is SimpleLazyObject and user._wrapped is empty:
        return None
    return getattr(user, "pk", None)


class RequestIdMiddleware:
    # Sync and async: under ASGI a sync-only middleware would put every request (and every async view's
    # wait) on a thread.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        token, started = self._start(request)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        return self._finish(request, response, started)

    async def _acall(self, request):
        token, started = self._start(request)
        try:
            response = await self.get_response(request)
        finally:
            current_request_id.reset(token)
        return self._finish(request, response, started)

    def _start(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request.request_id = supplied if 0 < len(supplied) <= 64 and supplied.isprintable() else uuid.uuid4().hex
        return current_request_id.set(request.request_id), time.perf_counter()

    def _finish(self, request, response, started: float):
        response["X-Request-ID"] = request.request_id
        logger.info(
            "request",
            extra={
                "request_id": request.request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "user_id": _loaded_user_id(request),
            },
        )
        return response


def database_unavailable_response(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The documented outage answer: JSON for APIs and scripts, a plain page for people; 503, Retry-After."""
    logger.warning("database unavailable: %s", exception.__class__.__name__)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if wants_json_error(request):
        return JsonResponse(
            {"error": "database_unavailable", "detail": "The database is unavailable; try again shortly."},
            status=503,
            headers=headers,
        )
    # Rendered without the request: the context processors would load the user, from the database.
    page = render_to_string("503.html", {"retry_after_seconds": RETRY_AFTER_SECONDS})
    return HttpResponse(page, status=503, headers=headers)


class DatabaseUnavailableMiddleware:
    # Sync and async: passes the request on as it came (a coroutine when the chain is async).
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OUTAGE_ERRORS):
            return database_unavailable_response(request, exception)
        return None


class SessionMiddleware(sessions.SessionMiddleware):
    """Django's, answering a session save that fails in an outage with the 503 instead of a 500 page."""

    def process_response(self, request, response):
        try:
            return super().process_response(request, response)
        except OUTAGE_ERRORS as exc:
            return database_unavailable_response(request, exc)
