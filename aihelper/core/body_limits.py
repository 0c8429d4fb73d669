"""Request bodies over the limit are refused before anything reads them: 413 from Content-Length alone.

Django raises ``RequestDataTooBig`` only when something first touches ``request.body``/``request.POST``
(DRF's parser, the CSRF check, a view), which it turns into a 400 HTML page with an ERROR traceback. This
middleware answers first, in ``process_view``: every middleware's request phase has run by then and none of
ours reads the body there, while the first reader (``CsrfViewMiddleware.process_view``) and the views come
after it. A response returned from ``process_view`` also passes back through every middleware, so it carries
the same security headers as any other answer.

- With ``Content-Length``: compared with the limit; the body is not read at all.
- Chunked, without a length: at most limit + 1 bytes are read before deciding, then handed on as the body.
  On WSGI only when the server has de-chunked the stream (``wsgi.input_terminated``, as gunicorn sets); one
  that cannot (Django's development and test server) would hand Django an empty body, so that is a 411. On
  ASGI Django has already buffered the whole body (to disk past 2.5 MB); it is read from that buffer.
- Whatever still reaches Django's own limits (``RequestDataTooBig``, ``TooManyFieldsSent``,
  ``TooManyFilesSent``: from a view, DRF, or the CSRF check that parses a form) is a 413/400 with words.

The limit: ``API_MAX_BODY_BYTES`` under /api/ (the same 413 ``LimitedJSONParser`` gives, so a client is told
one limit) unless ``API_BODY_LIMITS_BY_PREFIX`` gives a path its own (the alert webhooks, 1 MiB, which read
their body as a stream), ``DATA_UPLOAD_MAX_MEMORY_SIZE`` everywhere else (the chat stream and the forms), and
otherwise never more than Django's. APIs and JSON clients get ``{"error", "detail"}``; people get a plain
page in Django's own error-page layout.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from django.utils.html import escape
from django.views.defaults import ERROR_PAGE_TEMPLATE

from aihelper.core.negotiation import is_api_request, wants_json_error

FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_READ_CHUNK = 64 * 1024


def body_limit(request: HttpRequest) -> int | None:
    """The largest body this request may carry, in bytes (None: no limit configured)."""
    form_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if not is_api_request(request):
        return form_limit
    for prefix, limit in settings.API_BODY_LIMITS_BY_PREFIX.items():
        # Views that read their body as a stream (the alert webhooks) and so are not bound by Django's limit.
        if request.path_info.startswith(prefix):
            return limit
    api_limit = settings.API_MAX_BODY_BYTES
    return api_limit if form_limit is None else min(api_limit, form_limit)


def _refusal(request: HttpRequest, *, status: int, code: str, title: str, detail: str) -> HttpResponse:
    if wants_json_error(request):
        return JsonResponse({"error": code, "detail": detail}, status=status)
    page = ERROR_PAGE_TEMPLATE % {"title": escape(f"{title} ({status})"), "details": escape(detail)}
    return HttpResponse(page, status=status)


def _too_large(request: HttpRequest, *, limit: int | None, size: int | None = None) -> HttpResponse:
    if size is None:
        detail = f"The request body is larger than the limit of {limit} bytes."
    else:
        detail = f"The request body is {size} bytes; the limit is {limit} bytes."
    return _refusal(request, status=413, code="payload_too_large", title="Request body too large", detail=detail)


def _declared_length(request: HttpRequest) -> int | None:
    declared = request.META.get("CONTENT_LENGTH")
    if not declared:
        return None
    try:
        return int(declared)
    except ValueError:
        return 0  # what Django reads for an unparsable length: nothing


def _is_chunked(request: HttpRequest) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def _read_at_most(stream, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(remaining, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _take_unsized_body(request: HttpRequest, limit: int | None) -> HttpResponse | None:
    """Read a chunked body up to just past the limit; refuse it, or hand it on as if it had a length."""
    environ = request.META
    if "wsgi.input" in environ:
        if not environ.get("wsgi.input_terminated"):
            return _refusal(
                request,
                status=411,
                code="length_required",
                title="Length required",
                detail="Send the request body with a Content-Length header; this server cannot read a chunked body.",
            )
        stream = environ["wsgi.input"]
    else:
        stream = request._stream  # ASGI: the body Django has already buffered (to disk past 2.5 MB)
    body = stream.read() if limit is None else _read_at_most(stream, limit + 1)
    if limit is not None and len(body) > limit:
        return _too_large(request, limit=limit)
    # The request's stream was built from the (absent) Content-Length and would read nothing on WSGI: give it
    # the bytes just read, exactly as if the client had sent their length.
    environ["CONTENT_LENGTH"] = str(len(body))
    request._stream = LimitedStream(io.BytesIO(body), len(body))
    return None


def _refuse_body_error(request: HttpRequest, exception: Exception) -> HttpResponse | None:
    if isinstance(exception, RequestDataTooBig):
        return _too_large(request, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if isinstance(exception, TooManyFieldsSent):
        detail = f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields."
        return _refusal(request, status=400, code="too_many_fields", title="Too many fields", detail=detail)
    if isinstance(exception, TooManyFilesSent):
        detail = f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files."
        return _refusal(request, status=400, code="too_many_files", title="Too many files", detail=detail)
    return None


class BodyLimitMiddleware(MiddlewareMixin):
    """Place before CsrfViewMiddleware (whose process_view is the first to read a form body). Sync and async
    (MiddlewareMixin); under ASGI ``aihelper.core.async_http.BodyLimitASGI`` keeps Django from reading the
    body first."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        limit = body_limit(request)
        declared = _declared_length(request)
        if declared is not None:
            if limit is not None and declared > limit:
                return _too_large(request, limit=limit, size=declared)
        elif _is_chunked(request):
            refused = _take_unsized_body(request, limit)
            if refused is not None:
                return refused
        if (
            request.method == "POST"
            and request.content_type in FORM_CONTENT_TYPES
            and not getattr(view_func, "csrf_exempt", False)
        ):
            # The CSRF check parses this form next anyway; parsing it here turns a form with too many fields
            # into a 400 with words instead of a 400 page with an ERROR traceback.
            try:
                request.POST  # noqa: B018 - parsed for its side effect and its errors
            except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
                return _refuse_body_error(request, exc)
        return None

    def process_exception(self, request, exception):
        return _refuse_body_error(request, exception)
