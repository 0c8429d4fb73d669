"""Every API error is JSON that says what is wrong: {"error": code, "detail": text, "fields": {...}}."""

from django.db import InterfaceError, OperationalError
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# The error envelope as an OpenAPI component, for every view's documented error responses.
ERROR_BODY = inline_serializer(
    "ErrorBody",
    fields={
        "error": serializers.CharField(),
        "detail": serializers.CharField(),
        "fields": serializers.DictField(required=False),
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
    response.data = body
    return response
