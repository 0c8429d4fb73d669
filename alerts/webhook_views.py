"""The alert webhooks: ``POST /api/alerts/alertmanager`` (Alertmanager, and Grafana recognised by its fields)
and ``POST /api/alerts/grafana`` (Grafana only). Plain Django views: a bearer token per receiver instead of
sessions (so no CSRF), their own body limit, the project's JSON error envelope (docs/alerts.md, "Intake")."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from aihelper.core.api_errors import json_view
from alerts.intake import MAX_BODY_BYTES, IntakeError, body_parse, notification_parse
from alerts.models import AlertFormat
from alerts.receivers import alert_receiver_authenticate
from alerts.storage import alert_notification_store

_READ_CHUNK = 64 * 1024


def _error(status: int, code: str, detail: str, *, fields: dict | None = None, headers: dict | None = None):
    body: dict = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return JsonResponse(body, status=status, headers=headers)


def _too_large(detail: str) -> JsonResponse:
    return _error(413, "payload_too_large", detail)


def _read_body(request: HttpRequest) -> bytes | JsonResponse:
    """The body, read from the stream (not ``request.body``, which holds to DATA_UPLOAD_MAX_MEMORY_SIZE) and
    never past the webhook's own limit."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _too_large(f"The request body is {int(declared)} bytes; the limit is {MAX_BODY_BYTES} bytes.")
    chunks: list[bytes] = []
    received = 0
    while received <= MAX_BODY_BYTES:
        chunk = request.read(min(_READ_CHUNK, MAX_BODY_BYTES + 1 - received))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    if received > MAX_BODY_BYTES:
        return _too_large(f"The request body is larger than the limit of {MAX_BODY_BYTES} bytes.")
    return b"".join(chunks)


def _intake(request: HttpRequest, *, format: str | None) -> JsonResponse:
    received_at = timezone.now()
    authentication = alert_receiver_authenticate(authorization=request.headers.get("Authorization", ""))
    if authentication.receiver is None:
        return _error(
            401, "not_authenticated", authentication.refusal, headers={"WWW-Authenticate": 'Bearer realm="alerts"'}
        )
    raw = _read_body(request)
    if isinstance(raw, JsonResponse):
        return raw
    try:
        notification = notification_parse(body_parse(raw), format=format)
    except IntakeError as exc:
        return _error(400, "invalid", str(exc), fields=exc.as_fields())
    stored = alert_notification_store(
        receiver=authentication.receiver, notification=notification, received_at=received_at
    )
    return JsonResponse(
        {
            "stored": stored.stored,
            "new": stored.new,
            "resolved": stored.resolved,
            "group": stored.group_id,
            "notification": stored.notification_id,
            "format": notification.format,
        }
    )


@csrf_exempt
@json_view("POST")
def alertmanager_webhook(request: HttpRequest) -> JsonResponse:
    return _intake(request, format=None)


@csrf_exempt
@json_view("POST")
def grafana_webhook(request: HttpRequest) -> JsonResponse:
    return _intake(request, format=AlertFormat.GRAFANA)
