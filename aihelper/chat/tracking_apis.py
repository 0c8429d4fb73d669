"""Click tracking and event ingestion API (docs/tracking.md)."""

from __future__ import annotations

import json

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from aihelper.chat.models import ChatSession
from aihelper.core.api_errors import ERROR_BODY
from aihelper.core.api_limits import LimitedJSONParser
from audit.details import SOLUTION_TYPES, ActionDetails
from audit.models import AuditLog, EventSource
from audit.selectors import audit_logs_for_user, latest_audit_log_presenting
from audit.services.ingest import CLIENT_EVENT_TYPES, events_ingest
from audit.services.store import DuplicateEvent
from audit.services.tracking import (
    FEEDBACK_COMMENT_MAX_CHARS,
    FEEDBACK_RATINGS,
    USER_ACTIONS,
    TrackingRejected,
    answer_feedback_record,
    click_record,
)
from runbooks.selectors import visible_runbooks

MAX_EVENTS_PER_REQUEST = 100
MAX_CONTEXT_BYTES = 4096

COMMON_ERRORS = {
    400: OpenApiResponse(ERROR_BODY, description="Invalid fields or malformed JSON"),
    401: OpenApiResponse(ERROR_BODY, description="Not logged in"),
    403: OpenApiResponse(ERROR_BODY, description="CSRF token missing or wrong (session auth)"),
    404: OpenApiResponse(ERROR_BODY, description="Unknown id, or it belongs to someone else"),
    413: OpenApiResponse(ERROR_BODY, description="Body larger than API_MAX_BODY_BYTES"),
    429: OpenApiResponse(ERROR_BODY, description="Throttled; see Retry-After"),
}


class TrackingThrottle(UserRateThrottle):
    scope = "tracking"


class EventsThrottle(UserRateThrottle):
    scope = "events"


class SmallJSONField(serializers.JSONField):
    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        encoded = json.dumps(data)
        if "\\u0000" in encoded:
            raise serializers.ValidationError("Must not contain NUL characters (PostgreSQL cannot store them).")
        if len(encoded) > MAX_CONTEXT_BYTES:
            raise serializers.ValidationError(f"Must be at most {MAX_CONTEXT_BYTES} bytes of JSON.")
        return data


class TrackChoiceApi(APIView):
    parser_classes = [LimitedJSONParser]
    throttle_classes = [TrackingThrottle]

    class ChoiceSerializer(serializers.Serializer):
        solution_chosen_id = serializers.CharField(max_length=100)
        solution_chosen_type = serializers.ChoiceField(choices=SOLUTION_TYPES)
        user_action = serializers.ChoiceField(choices=USER_ACTIONS)
        solution_chosen_rank = serializers.IntegerField(min_value=1, max_value=100, required=False)

    class InputSerializer(serializers.Serializer):
        audit_log_id = serializers.UUIDField(required=False)
        session_id = serializers.UUIDField(required=False)
        event_id = serializers.UUIDField(required=False)
        source = serializers.ChoiceField(choices=EventSource.choices, required=False, default=EventSource.DIRECT)
        choice_data = serializers.DictField()

        def validate_choice_data(self, value):
            serializer = TrackChoiceApi.ChoiceSerializer(data=value)
            serializer.is_valid(raise_exception=True)
            return serializer.validated_data

        def validate(self, attrs):
            if not attrs.get("audit_log_id") and not attrs.get("session_id"):
                raise serializers.ValidationError({"audit_log_id": "Give audit_log_id or session_id (or both)."})
            return attrs

    class OutputSerializer(serializers.Serializer):
        audit_log_id = serializers.UUIDField()
        event_id = serializers.UUIDField()
        click_count = serializers.IntegerField()
        rank = serializers.IntegerField(allow_null=True)
        time_to_decision_seconds = serializers.FloatField()
        duplicate = serializers.BooleanField()

    @extend_schema(
        operation_id="track_choice",
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            200: OpenApiResponse(OutputSerializer, description="Repeated event_id: acknowledged, stored once"),
            409: OpenApiResponse(ERROR_BODY, description="event_id already used for a different event"),
            422: OpenApiResponse(ERROR_BODY, description="Solution not presented, or rank disagrees"),
            **COMMON_ERRORS,
        },
        description="Record which presented solution the engineer chose. Appends, never overwrites.",
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        choice = data["choice_data"]
        solution_id = choice["solution_chosen_id"]
        solution_type = choice["solution_chosen_type"]
        audit_log_id = data.get("audit_log_id")
        session_id = data.get("session_id")
        if audit_log_id is not None:
            # Ownership and the session match are checked under the row lock by click_record.
            target_id = audit_log_id
        else:
            if not ChatSession.objects.filter(pk=session_id, user=request.user).exists():
                raise Http404("No such session.")
            audit_log = latest_audit_log_presenting(
                user=request.user, session_id=session_id, solution_id=solution_id, solution_type=solution_type
            )
            if audit_log is None:
                return _unprocessable(
                    "solution_chosen_id", f"{solution_type} {solution_id} was not presented in this session."
                )
            target_id = audit_log.pk
        try:
            result = click_record(
                user=request.user,
                audit_log_id=target_id,
                session_id=session_id if audit_log_id is not None else None,
                solution_id=solution_id,
                solution_type=solution_type,
                user_action=choice["user_action"],
                client_rank=choice.get("solution_chosen_rank"),
                event_id=data.get("event_id"),
                source=data["source"],
            )
        except AuditLog.DoesNotExist:
            raise Http404("No such audit log.") from None
        except TrackingRejected as exc:
            return _unprocessable(exc.field, exc.message)
        except DuplicateEvent:
            return Response(
                {"error": "conflict", "detail": "event_id is already used by a different event."},
                status=status.HTTP_409_CONFLICT,
            )
        output = self.OutputSerializer(result.__dict__).data
        return Response(output, status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)


def _unprocessable(field: str, message: str) -> Response:
    return Response(
        {"error": "unprocessable", "detail": message, "fields": {field: [message]}},
        status=status.HTTP_422_UNPROCESSABLE_ENTITY,
    )


class AnswerFeedbackApi(APIView):
    parser_classes = [LimitedJSONParser]
    throttle_classes = [TrackingThrottle]

    class InputSerializer(serializers.Serializer):
        audit_log_id = serializers.UUIDField()
        rating = serializers.ChoiceField(choices=FEEDBACK_RATINGS)
        comment = serializers.CharField(
            max_length=FEEDBACK_COMMENT_MAX_CHARS, required=False, allow_blank=True, default="", trim_whitespace=True
        )
        event_id = serializers.UUIDField(required=False)

    class OutputSerializer(serializers.Serializer):
        audit_log_id = serializers.UUIDField()
        event_id = serializers.UUIDField()
        rating = serializers.ChoiceField(choices=FEEDBACK_RATINGS)
        feedback_count = serializers.IntegerField()
        duplicate = serializers.BooleanField()

    @extend_schema(
        operation_id="answer_feedback",
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            200: OpenApiResponse(OutputSerializer, description="Repeated event_id: acknowledged, stored once"),
            **COMMON_ERRORS,
        },
        description="Thumbs up/down (and an optional comment) on a whole answer. Appended to the audit "
        'log\'s user_modifications["feedback"]; never overwrites earlier feedback.',
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            result = answer_feedback_record(
                user=request.user,
                audit_log_id=data["audit_log_id"],
                rating=data["rating"],
                comment=data["comment"],
                event_id=data.get("event_id"),
            )
        except AuditLog.DoesNotExist:
            # DRF's NotFound (not Http404) so the body says "not_found" rather than a generic code.
            raise NotFound("No such audit log.") from None
        output = self.OutputSerializer(result.__dict__).data
        return Response(output, status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)


class EventIngestApi(APIView):
    parser_classes = [LimitedJSONParser]
    throttle_classes = [EventsThrottle]

    class EventSerializer(serializers.Serializer):
        event_id = serializers.UUIDField()
        event_type = serializers.ChoiceField(choices=[(value, value) for value in CLIENT_EVENT_TYPES])
        runbook_id = serializers.UUIDField()
        audit_log_id = serializers.UUIDField(required=False, allow_null=True)
        session_id = serializers.UUIDField(required=False, allow_null=True)
        rank = serializers.IntegerField(min_value=1, max_value=100, required=False, allow_null=True)
        source = serializers.ChoiceField(choices=EventSource.choices)
        client_timestamp = serializers.DateTimeField()
        page_context = SmallJSONField(required=False)
        metadata = SmallJSONField(required=False)

    class InputSerializer(serializers.Serializer):
        events = serializers.ListField(child=serializers.DictField(), allow_empty=False)

        def validate_events(self, value):
            if len(value) > MAX_EVENTS_PER_REQUEST:
                raise serializers.ValidationError(
                    f"At most {MAX_EVENTS_PER_REQUEST} events per request; got {len(value)}."
                )
            return value

    class OutputSerializer(serializers.Serializer):
        accepted = serializers.ListField(child=serializers.UUIDField())
        duplicates = serializers.ListField(child=serializers.UUIDField())
        rejected = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="ingest_events",
        request=InputSerializer,
        responses={
            201: OpenApiResponse(OutputSerializer, description="At least one event stored"),
            200: OpenApiResponse(OutputSerializer, description="Only duplicates: nothing new stored"),
            400: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="EventsBadRequest",
                    serializers=[OutputSerializer, ERROR_BODY],
                    resource_type_field_name=None,
                ),
                description="Every event rejected (the batch report), or the body is invalid (an error body)",
            ),
            **{code: value for code, value in COMMON_ERRORS.items() if code != 400},
        },
        description=f"Batch of up to {MAX_EVENTS_PER_REQUEST} interaction events. Valid ones are stored "
        "even when others are rejected; each rejection gives its index and reasons.",
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        raw_events = serializer.validated_data["events"]
        valid, rejected = [], []
        for index, raw in enumerate(raw_events):
            item = self.EventSerializer(data=raw)
            if not item.is_valid():
                rejected.append({"index": index, "event_id": raw.get("event_id"), "errors": item.errors})
                continue
            valid.append((index, item.validated_data))
        valid, more_rejected = _check_references(request.user, valid)
        rejected.extend(more_rejected)
        report = events_ingest(user=request.user, events=[data for _, data in valid], rejected=rejected)
        report.rejected.sort(key=lambda item: item["index"])
        body = self.OutputSerializer(report.__dict__).data
        if report.accepted:
            code = status.HTTP_201_CREATED
        elif report.duplicates:
            code = status.HTTP_200_OK
        else:
            code = status.HTTP_400_BAD_REQUEST
        return Response(body, status=code)


def _check_references(user, valid: list[tuple[int, dict]]) -> tuple[list[tuple[int, dict]], list[dict]]:
    """Runbooks must be visible to the user; audit logs and sessions must be theirs (3 queries in all)."""
    runbook_ids = {data["runbook_id"] for _, data in valid}
    audit_ids = {data["audit_log_id"] for _, data in valid if data.get("audit_log_id")}
    session_ids = {data["session_id"] for _, data in valid if data.get("session_id")}
    visible = set(visible_runbooks(user).filter(pk__in=runbook_ids).values_list("pk", flat=True))
    audits = {
        row["id"]: row
        for row in audit_logs_for_user(user).filter(pk__in=audit_ids).values("id", "session_id", "ai_action_details")
    }
    sessions = set(ChatSession.objects.filter(user=user, pk__in=session_ids).values_list("pk", flat=True))
    kept, rejected = [], []
    for index, data in valid:
        errors = {}
        if data["runbook_id"] not in visible:
            errors["runbook_id"] = ["Unknown runbook."]
        audit = audits.get(data.get("audit_log_id")) if data.get("audit_log_id") else None
        if data.get("audit_log_id") and audit is None:
            errors["audit_log_id"] = ["Unknown audit log."]
        if data.get("session_id") and data["session_id"] not in sessions:
            errors["session_id"] = ["Unknown session."]
        if errors:
            rejected.append({"index": index, "event_id": str(data["event_id"]), "errors": errors})
            continue
        if audit is not None:
            details = ActionDetails.from_json(audit["ai_action_details"])
            data["experiment"] = details.experiment
            data["variant"] = details.variant
            data.setdefault("session_id", audit["session_id"])
        kept.append((index, data))
    return kept, rejected
