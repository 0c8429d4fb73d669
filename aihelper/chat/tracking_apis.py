"""Click tracking and event ingestion API (docs/tracking.md)."""

from __future__ import annotations

import json
import uuid

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from aihelper.chat.models import ChatSession
from aihelper.core.api_errors import ERROR_BODY
from aihelper.core.api_fields import JSONCharField, JSONUUIDField
from aihelper.core.api_limits import TEXT_RULE, LimitedJSONParser, json_text_problem
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
    400: OpenApiResponse(ERROR_BODY, description="Invalid fields or malformed JSON; `fields` names each field"),
    401: OpenApiResponse(ERROR_BODY, description="Not logged in (no or a wrong token): `WWW-Authenticate: Token`"),
    403: OpenApiResponse(ERROR_BODY, description="CSRF token missing or wrong (session auth)"),
    404: OpenApiResponse(ERROR_BODY, description="Unknown id, or it belongs to someone else: `not_found`"),
    413: OpenApiResponse(ERROR_BODY, description="Body larger than API_MAX_BODY_BYTES"),
    429: OpenApiResponse(ERROR_BODY, description="Throttled; see Retry-After"),
}
CONFLICT = OpenApiResponse(
    ERROR_BODY, description="event_id already used for a different event (error `conflict`); nothing stored"
)
CONFLICT_DETAIL = "This event_id is already used by a different event."


class EventIdConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = CONFLICT_DETAIL


class TrackingThrottle(UserRateThrottle):
    scope = "tracking"


class EventsThrottle(UserRateThrottle):
    scope = "events"


@extend_schema_field({"type": "object", "additionalProperties": True,
                      "description": f"A JSON object of at most {MAX_CONTEXT_BYTES} bytes."})
class SmallJSONField(serializers.JSONField):
    """A JSON object of at most MAX_CONTEXT_BYTES (NUL and unpaired surrogates are refused with the body)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        encoded = json.dumps(data)
        if len(encoded) > MAX_CONTEXT_BYTES:
            raise serializers.ValidationError(f"Must be at most {MAX_CONTEXT_BYTES} bytes of JSON.")
        return data


class ChoiceDataSerializer(serializers.Serializer):
    """What the engineer chose: which presented solution, and what they did with it."""

    solution_chosen_id = JSONCharField(
        min_length=1,
        max_length=100,
        help_text="The id of a solution the answer presented (a runbook UUID for runbooks).",
    )
    solution_chosen_type = serializers.ChoiceField(choices=SOLUTION_TYPES)
    user_action = serializers.ChoiceField(choices=USER_ACTIONS)
    solution_chosen_rank = serializers.IntegerField(
        min_value=1, max_value=100, required=False, help_text="Optional; must equal the presented rank (else 422)."
    )


class TrackChoiceApi(APIView):
    parser_classes = [LimitedJSONParser]
    throttle_classes = [TrackingThrottle]

    class InputSerializer(serializers.Serializer):
        audit_log_id = JSONUUIDField(required=False, help_text="Give audit_log_id or session_id (or both).")
        session_id = JSONUUIDField(required=False)
        event_id = JSONUUIDField(
            required=False, help_text="Client-chosen id that makes retries safe; one is made up when absent."
        )
        source = serializers.ChoiceField(choices=EventSource.choices, required=False, default=EventSource.DIRECT)
        choice_data = ChoiceDataSerializer()

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
            200: OpenApiResponse(
                OutputSerializer, description="Repeated event_id, same click: acknowledged, stored once"
            ),
            409: CONFLICT,
            422: OpenApiResponse(ERROR_BODY, description="Solution not presented, or rank disagrees"),
            **COMMON_ERRORS,
        },
        description="Record which presented solution the engineer chose. Appends, never overwrites. " + TEXT_RULE,
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
                raise NotFound("No such session.")
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
            raise NotFound("No such audit log.") from None
        except TrackingRejected as exc:
            return _unprocessable(exc.field, exc.message)
        except DuplicateEvent:
            raise EventIdConflict() from None
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
        audit_log_id = JSONUUIDField()
        rating = serializers.ChoiceField(choices=FEEDBACK_RATINGS)
        comment = JSONCharField(
            max_length=FEEDBACK_COMMENT_MAX_CHARS, required=False, allow_blank=True, default="", trim_whitespace=True
        )
        event_id = JSONUUIDField(
            required=False, help_text="Client-chosen id that makes retries safe; one is made up when absent."
        )

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
            200: OpenApiResponse(
                OutputSerializer, description="Repeated event_id, same rating and comment: acknowledged, stored once"
            ),
            409: CONFLICT,
            **COMMON_ERRORS,
        },
        description="Thumbs up/down (and an optional comment) on a whole answer. Appended to the audit "
        'log\'s user_modifications["feedback"]; never overwrites earlier feedback. ' + TEXT_RULE,
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
            raise NotFound("No such audit log.") from None
        except DuplicateEvent:
            raise EventIdConflict() from None
        output = self.OutputSerializer(result.__dict__).data
        return Response(output, status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)


class ClientEventSerializer(serializers.Serializer):
    """One event of a batch (docs/tracking.md)."""

    event_id = JSONUUIDField(help_text="Client-chosen; a retry re-sends the same id with the same event.")
    event_type = serializers.ChoiceField(choices=[(value, value) for value in CLIENT_EVENT_TYPES])
    runbook_id = JSONUUIDField()
    audit_log_id = JSONUUIDField(required=False, allow_null=True)
    session_id = JSONUUIDField(required=False, allow_null=True)
    rank = serializers.IntegerField(min_value=1, max_value=100, required=False, allow_null=True)
    source = serializers.ChoiceField(choices=EventSource.choices)
    client_timestamp = serializers.DateTimeField()
    page_context = SmallJSONField(required=False)
    metadata = SmallJSONField(required=False)


class EventBatchField(serializers.ListField):
    """The list of events: its length is checked here, each event by the view, one by one, so that the valid
    events of a batch are stored when others are rejected (the child serializer is there for the schema)."""

    def run_child_validation(self, data):
        return list(data)


class EventsJSONParser(LimitedJSONParser):
    item_checked_keys = ("events",)


class RejectedEventSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the event in the request's list.")
    event_id = serializers.UUIDField(allow_null=True, help_text="The event's event_id, when it is a UUID.")
    error = serializers.ChoiceField(
        choices=["invalid", "conflict"],
        help_text="`invalid`: see errors; `conflict`: event_id already used by a different event (another user's "
        "included), nothing stored.",
    )
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field path inside the event (`event_type`, `metadata.k`).",
    )


class EventIngestApi(APIView):
    parser_classes = [EventsJSONParser]
    throttle_classes = [EventsThrottle]

    class InputSerializer(serializers.Serializer):
        events = EventBatchField(
            child=ClientEventSerializer(),
            allow_empty=False,
            min_length=1,
            max_length=MAX_EVENTS_PER_REQUEST,
            error_messages={"max_length": "At most {max_length} events per request."},
        )

    class OutputSerializer(serializers.Serializer):
        accepted = serializers.ListField(child=serializers.UUIDField())
        duplicates = serializers.ListField(child=serializers.UUIDField())
        rejected = RejectedEventSerializer(many=True)

    @extend_schema(
        operation_id="ingest_events",
        request=InputSerializer,
        responses={
            201: OpenApiResponse(OutputSerializer, description="At least one event stored"),
            200: OpenApiResponse(OutputSerializer, description="Nothing new stored, some duplicates acknowledged"),
            400: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="EventsBadRequest",
                    serializers=[OutputSerializer, ERROR_BODY],
                    resource_type_field_name=None,
                ),
                description="Nothing stored and at least one event invalid (the batch report), or the body is "
                "invalid (an error body)",
            ),
            409: OpenApiResponse(
                OutputSerializer, description="Nothing stored: every event's id is already used by a different event"
            ),
            **{code: value for code, value in COMMON_ERRORS.items() if code != 400},
        },
        description=f"Batch of up to {MAX_EVENTS_PER_REQUEST} interaction events. Valid ones are stored "
        "even when others are rejected; each rejection gives its index and reasons. " + TEXT_RULE + " In the "
        "events that rule rejects that event only.",
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        valid, rejected = [], []
        for index, raw in enumerate(serializer.validated_data["events"]):
            problem = json_text_problem(raw)
            item = None if problem else ClientEventSerializer(data=raw)
            if item is not None and item.is_valid():
                valid.append((index, item.validated_data))
                continue
            errors = problem.as_errors() if problem else item.errors
            rejected.append(_rejection(index, _event_id(raw), errors))
        valid, more_rejected = _check_references(request.user, valid)
        rejected.extend(more_rejected)
        report = events_ingest(user=request.user, events=[data for _, data in valid])
        for position in report.conflicts:
            index, data = valid[position]
            rejected.append(_rejection(index, data["event_id"], {"event_id": [CONFLICT_DETAIL]}, error="conflict"))
        rejected.sort(key=lambda item: item["index"])
        body = self.OutputSerializer(
            {"accepted": report.accepted, "duplicates": report.duplicates, "rejected": rejected}
        ).data
        if report.accepted:
            code = status.HTTP_201_CREATED
        elif report.duplicates:
            code = status.HTTP_200_OK
        elif report.conflicts and len(report.conflicts) == len(rejected):
            code = status.HTTP_409_CONFLICT
        else:
            code = status.HTTP_400_BAD_REQUEST
        return Response(body, status=code)


def _event_id(raw) -> uuid.UUID | None:
    """The event_id of an event that was sent, if it is one: never client text echoed back."""
    value = raw.get("event_id") if isinstance(raw, dict) else None
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _rejection(index: int, event_id, errors, *, error: str = "invalid") -> dict:
    return {"index": index, "event_id": event_id, "error": error, "errors": errors}


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
            rejected.append(_rejection(index, data["event_id"], errors))
            continue
        if audit is not None:
            details = ActionDetails.from_json(audit["ai_action_details"])
            data["experiment"] = details.experiment
            data["variant"] = details.variant
            data.setdefault("session_id", audit["session_id"])
        kept.append((index, data))
    return kept, rejected
