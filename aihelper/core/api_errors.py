"""Every API error is JSON that says what is wrong: {"error": code, "detail": text, "fields": {...}}."""

from functools import wraps

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.defaults import page_not_found
from django.views.defaults import server_error as django_server_error
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from aihelper.core.api_limits import printable_json
from aihelper.core.negotiation import ANSWERS_JSON, is_api_request, wants_json_error

# The error envelope as an OpenAPI component, for every view's documented error responses.
ERROR_BODY = inline_serializer(
    "ErrorBody",
    fields={
        "error": serializers.CharField(),
        "detail": serializers.CharField(),
        "fields": serializers.DictField(
            required=False,
            help_text="Invalid fields by path (`choice_data.user_action`, `metadata.k`), each with its messages.",
        ),
    },
)


def exception_handler(exc, context):
    # Only a lost or refused connection is an outage; any other database error is a bug and must surface
    # as one (500 with a traceback in the logs), not as "retry in 5 s".
    if isinstance(exc, OperationalError | InterfaceError):
        return Response(
            {"error": "database_unavailable", "detail": "The database is unavailable; try again shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    # Django's own exceptions get DRF's codes ("not_found", "permission_denied"), as DRF's handler gives
    # them its status codes.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    body: dict = {"error": getattr(exc, "default_code", "error")}
    if isinstance(exc, exceptions.ValidationError):
        body["error"] = "invalid"
        body["detail"] = "The request has invalid fields."
        body["fields"] = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
        body["detail"] = str(detail)
        if isinstance(exc, exceptions.APIException) and isinstance(exc.detail, dict):
            body["fields"] = exc.detail
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        body["retry_after_seconds"] = int(exc.wait)
    # A message may quote what the client sent (DRF's '"x" is not a valid choice.'): never let a lone
    # surrogate or NUL from it make the error itself unrenderable.
    response.data = printable_json(body)
    return response


def api_error_response(exc: exceptions.APIException) -> JsonResponse:
    """The same error answer from a plain Django view that speaks JSON (the chat stream)."""
    response = exception_handler(exc, {})
    headers = {name: value for name, value in response.items() if name.lower() != "content-type"}
    return JsonResponse(response.data, status=response.status_code, headers=headers)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under /api/ (an unknown route, a session id that is not a UUID), HTML elsewhere."""
    if is_api_request(request):
        return JsonResponse({"error": "not_found", "detail": "No such API endpoint or object."}, status=404)
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the documented JSON envelope for APIs and scripts that send JSON (the chat stream), Django's
    plain page elsewhere. The error itself is logged by Django with the request id; the body gives nothing away."""
    if wants_json_error(request):
        return JsonResponse({"error": "server_error", "detail": "Something went wrong on our side; it has been "
                             "logged. Try again, and tell the team if it keeps happening."}, status=500)
    return django_server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a JSON 403 for JSON clients (the chat stream, the APIs with a session), the page
    elsewhere. The reason ("CSRF token missing", "Origin checking failed") says what to fix."""
    if wants_json_error(request):
        return JsonResponse({"error": "csrf_failed", "detail": f"CSRF check failed: {reason.rstrip('.')}. Send the "
                             "csrftoken cookie's value in the X-CSRFToken header."}, status=403)
    return django_csrf_failure(request, reason=reason)


def _method_not_allowed(request: HttpRequest, methods: tuple[str, ...]) -> JsonResponse:
    allowed = ", ".join(methods)
    return JsonResponse({"error": "method_not_allowed", "detail": f"Method {request.method} is not allowed here; "
                         f"use {allowed}."}, status=405, headers={"Allow": allowed})


def json_view(*methods: str):
    """For a plain Django view (sync or async) that answers JSON: only ``methods`` (else a JSON 405 with
    ``Allow``, where ``require_POST`` answers an empty HTML one), and its CSRF failures in the JSON envelope
    too, whatever the client accepts (``csrf_failure`` looks the view up by ``ANSWERS_JSON``)."""
    methods = tuple(method.upper() for method in methods)

    def decorator(view):
        def refused(request):
            return _method_not_allowed(request, methods) if request.method not in methods else None

        if iscoroutinefunction(view):
            @wraps(view)
            async def checked(request, *args, **kwargs):
                return refused(request) or await view(request, *args, **kwargs)
        else:
            @wraps(view)
            def checked(request, *args, **kwargs):
                return refused(request) or view(request, *args, **kwargs)
        setattr(checked, ANSWERS_JSON, True)
        return checked

    return decorator
