"""Request id for logs, and a fast JSON 503 when the database is down (never a 500 page)."""

from __future__ import annotations

import logging
import time
import uuid
from contextvars import ContextVar

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

logger = logging.getLogger("aihelper.request")
# The current request's id, added to every log line written while it is handled (aihelper/logjson.py).
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request.request_id = supplied if 0 < len(supplied) <= 64 and supplied.isprintable() else uuid.uuid4().hex
        token = current_request_id.set(request.request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response["X-Request-ID"] = request.request_id
        logger.info(
            "request",
            extra={
                "request_id": request.request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "user_id": getattr(getattr(request, "user", None), "pk", None),
            },
        )
        return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError | InterfaceError):
            logger.warning("database unavailable: %s", exception.__class__.__name__)
            return JsonResponse(
                {"error": "database_unavailable", "detail": "The database is unavailable; try again shortly."},
                status=503,
                headers={"Retry-After": "5"},
            )
        return None
