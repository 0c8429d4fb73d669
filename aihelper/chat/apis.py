"""JSON API of the chat: one APIView per operation; each validates, calls one service, serializes."""

from __future__ import annotations

import json

from adrf.views import APIView as AsyncAPIView
from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from aihelper.chat.models import ChatSession
from aihelper.chat.selectors import chat_messages_display, chat_session_get, chat_session_list
from aihelper.chat.services.orchestrator import SessionNotFound, achat_answer
from aihelper.core.api_errors import ERROR_BODY
from aihelper.core.api_fields import JSONCharField, JSONUUIDField
from aihelper.core.api_limits import TEXT_RULE, LimitedJSONParser
from audit.details import TURN_KINDS
from audit.models import EventSource
from runbooks.search import InvalidQuery

PAGE_CONTEXT_MAX_CHARS = 2000
AUTH_ERRORS = {
    401: OpenApiResponse(ERROR_BODY, description="Not logged in (no or a wrong token): `WWW-Authenticate: Token`"),
    403: OpenApiResponse(ERROR_BODY, description="CSRF token missing or wrong (session auth)"),
}


class PageContextSerializer(serializers.Serializer):
    """Where the engineer asked from: the page path and, on a runbook page, its id."""

    path = JSONCharField(max_length=500, required=False, allow_blank=True)
    runbook_id = JSONUUIDField(required=False, allow_null=True)
    title = JSONCharField(max_length=300, required=False, allow_blank=True)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("page_context must be an object, for example {\"path\": \"/runbooks/\"}.")
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown page_context keys: {', '.join(unknown)} (allowed: {', '.join(self.fields)})."
            )
        if len(json.dumps(data, default=str)) > PAGE_CONTEXT_MAX_CHARS:
            raise serializers.ValidationError(f"page_context is larger than {PAGE_CONTEXT_MAX_CHARS} characters.")
        value = super().to_internal_value(data)
        if value.get("runbook_id") is not None:
            value["runbook_id"] = str(value["runbook_id"])
        return value


class ChatQueryInputSerializer(serializers.Serializer):
    message = JSONCharField(
        trim_whitespace=True,
        min_length=1,
        help_text="The question: not blank (surrounding whitespace is trimmed first), at most "
        "AIHELPER_MAX_QUERY_CHARS characters (4000 by default).",
    )
    session_id = JSONUUIDField(required=False, allow_null=True)
    page_context = PageContextSerializer(required=False)

    def validate_message(self, value: str) -> str:
        limit = settings.AIHELPER_MAX_QUERY_CHARS
        if len(value) > limit:
            raise serializers.ValidationError(f"The message is too long: at most {limit} characters.")
        return value


class SolutionSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    type = serializers.CharField()
    id = serializers.CharField()
    slug = serializers.CharField()
    title = serializers.CharField()
    confidence = serializers.FloatField()
    success_rate = serializers.FloatField(allow_null=True)
    url = serializers.CharField()
    can_execute = serializers.BooleanField()
    carried_over = serializers.BooleanField(
        help_text="Kept from earlier in the conversation (a follow-up), not retrieved for this message's own words."
    )


class ConversationTurnSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=TURN_KINDS,
        help_text="new | continuation | follow_up | reference | shift | small_talk (docs/retrieval.md, Conversations).",
    )
    effective_query = serializers.CharField(help_text="The text the search ran for this turn.")
    referenced_rank = serializers.IntegerField(allow_null=True, help_text="'the second one' -> 2.")
    referenced_step = serializers.IntegerField(allow_null=True, help_text="'step 3' -> 3 (-1: the last step).")


class ChatThrottle(UserRateThrottle):
    """Each answer costs retrieval and an LLM call (a slot of the cap for its duration): THROTTLE_CHAT per user."""

    scope = "chat"


class QueryApi(AsyncAPIView):
    """Async (adrf): authentication, CSRF, throttling and validation as in every APIView (run on the request's
    thread), then the answer is awaited without holding one."""

    parser_classes = [LimitedJSONParser]
    throttle_classes = [ChatThrottle]
    InputSerializer = ChatQueryInputSerializer

    class OutputSerializer(serializers.Serializer):
        session_id = serializers.UUIDField(source="session.pk")
        audit_log_id = serializers.UUIDField(source="audit_log.pk")
        answer_markdown = serializers.CharField()
        answer_html = serializers.CharField()
        solutions = SolutionSerializer(many=True)
        conversation = ConversationTurnSerializer(source="turn")
        presentation_strategy = serializers.CharField()
        degraded = serializers.BooleanField()
        provider = serializers.CharField()
        message = serializers.CharField(
            source="user_message", help_text="The message as stored and sent to the LLM: secrets replaced."
        )
        redactions = serializers.ListField(
            child=serializers.CharField(), help_text="Kinds of the secrets removed from the message (no values)."
        )

    @extend_schema(
        request=ChatQueryInputSerializer,
        description="Ask a question; the answer is stored with the runbooks it presents. " + TEXT_RULE,
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(ERROR_BODY, description="Invalid fields or malformed JSON"),
            404: OpenApiResponse(ERROR_BODY, description="Unknown session, or someone else's"),
            413: OpenApiResponse(ERROR_BODY, description="Body larger than API_MAX_BODY_BYTES"),
            429: OpenApiResponse(ERROR_BODY, description="Throttled (THROTTLE_CHAT); see Retry-After"),
            **AUTH_ERRORS,
        },
    )
    async def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            answer = await achat_answer(
                user=request.user,
                message=data["message"],
                session_id=data.get("session_id"),
                page_context=data.get("page_context"),
                source=EventSource.DIRECT,
            )
        except SessionNotFound:
            raise NotFound("No such chat session.") from None
        except InvalidQuery as exc:
            raise serializers.ValidationError({"message": [str(exc)]}) from None
        return Response(self.OutputSerializer(answer).data, status=status.HTTP_200_OK)


class SessionListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = ChatSession
            fields = ["id", "title", "created_at", "updated_at"]

    @extend_schema(responses={200: OutputSerializer(many=True), 401: AUTH_ERRORS[401]})
    def get(self, request):
        return Response(self.OutputSerializer(chat_session_list(user=request.user), many=True).data)


class SessionMessagesApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        role = serializers.CharField()
        content = serializers.CharField()
        html = serializers.CharField()
        created_at = serializers.DateTimeField()
        audit_log_id = serializers.UUIDField(allow_null=True)
        solutions = SolutionSerializer(many=True)
        presentation_strategy = serializers.CharField()
        degraded = serializers.BooleanField()
        provider = serializers.CharField()

    @extend_schema(
        responses={
            200: OutputSerializer(many=True),
            404: OpenApiResponse(ERROR_BODY, description="Unknown session, or someone else's"),
            **AUTH_ERRORS,
        }
    )
    def get(self, request, session_id):
        try:
            session = chat_session_get(user=request.user, session_id=session_id)
        except ChatSession.DoesNotExist:
            raise NotFound("No such chat session.") from None
        return Response(self.OutputSerializer(chat_messages_display(session=session), many=True).data)
