"""What serving Django over ASGI needs from us: the body limit before Django reads a body, and WhiteNoise
without a thread per request.

Django's ASGI handler reads the whole request body (to memory, then disk) before any middleware runs, so
``BodyLimitMiddleware`` alone would only answer 413 after a client had sent (or trickled) all of it.
``BodyLimitASGI`` sits in front of the handler (aihelper/asgi.py) and never reads more than the limit:

- ``Content-Length`` over the limit: nothing is read; Django gets an empty body with the declared length and
  ``BodyLimitMiddleware`` answers the usual 413 (same body, same security headers as every answer).
- No ``Content-Length`` (chunked): at most limit + 1 bytes are read and handed on; past the limit
  ``BodyLimitMiddleware`` sees limit + 1 bytes and answers 413 the same way.

A body within the limit that arrives slowly costs a waiting coroutine, not a worker thread; cutting such
clients off is the job of the proxy in front (docs/operations.md: nginx buffers request bodies).
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from whitenoise.middleware import WhiteNoiseMiddleware as SyncWhiteNoiseMiddleware

from aihelper.core.body_limits import body_limit


def _declared_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _limit_for(scope) -> int | None:
    request = HttpRequest()
    request.path_info = scope.get("path", "")
    return body_limit(request)


class BodyLimitASGI:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = _limit_for(scope)
        declared = _declared_length(scope)
        if limit is None or (declared is not None and declared <= limit):
            return await self.app(scope, receive, send)
        if declared is not None:
            return await self.app(scope, _replay(b"", receive), send)
        body, complete = await _read_at_most(receive, limit + 1)
        if complete is None:
            return None  # the client went away while sending
        return await self.app(scope, _replay(body, receive), send)


async def _read_at_most(receive, size: int) -> tuple[bytes, bool | None]:
    """Up to ``size`` bytes of the body; (body, whether that was all of it), or None on a disconnect."""
    chunks: list[bytes] = []
    received = 0
    while received < size:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        received += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
    return b"".join(chunks)[:size], False


def _replay(body: bytes, receive):
    """A ``receive`` that gives Django ``body`` as the whole request, then only the disconnect: the rest of a
    body over the limit, should the client go on sending it, is discarded (Django expects nothing else)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message

    return replayed


class WhiteNoiseMiddleware(SyncWhiteNoiseMiddleware):
    """WhiteNoise 6 is synchronous: in an async middleware chain Django would run every request (and wait
    for every streamed answer) on a thread because of it. Serving a static file stays synchronous (a dict
    look-up and an open file); everything else is passed on without leaving the event loop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)
