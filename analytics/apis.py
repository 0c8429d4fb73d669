"""GET /api/analytics/metrics: every metric of docs/analytics.md as JSON (staff only)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aihelper.core.api_errors import ERROR_BODY
from analytics.services.dashboard import analytics_dashboard
from analytics.services.parameters import (
    KEY_MAX_CHARS,
    SOURCES,
    InvalidParameters,
    analytics_parameters_parse,
)
from analytics.services.presentation import dashboard_as_json
from analytics.services.ranges import DEFAULT_RANGE_DAYS, EARLIEST_DAY, LATEST_DAY, MAX_RANGE_DAYS
from runbooks.calibration import STRATEGIES


class IsStaff(permissions.BasePermission):
    message = "Analytics are for staff only."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


def _parameter(name: str, description: str, choices=None) -> OpenApiParameter:
    return OpenApiParameter(name, str, description=description, enum=choices)


class MetricsApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]

    @extend_schema(
        parameters=[
            _parameter(
                "start",
                f"ISO 8601 date (whole day, settings.TIME_ZONE) or date-time, {EARLIEST_DAY} to "
                f"{LATEST_DAY}; default: {DEFAULT_RANGE_DAYS} days before end",
            ),
            _parameter(
                "end",
                f"ISO 8601 date (inclusive) or date-time (exclusive); at most {MAX_RANGE_DAYS} days "
                "after start; default: the end of today",
            ),
            _parameter("source", "Only answers given in this UI", SOURCES),
            _parameter("strategy", "Only answers with this presentation strategy", STRATEGIES),
            _parameter("experiment", f"Experiment key (lower-case letters, digits, '_', '-'; at most {KEY_MAX_CHARS})"),
            _parameter("variant", f"Variant key (lower-case letters, digits, '_', '-'; at most {KEY_MAX_CHARS})"),
        ],
        responses={
            200: dict,
            400: OpenApiResponse(ERROR_BODY, description="Invalid parameter; fields names each one"),
            401: OpenApiResponse(ERROR_BODY, description="Not logged in"),
            403: OpenApiResponse(ERROR_BODY, description="Not staff"),
        },
    )
    def get(self, request):
        try:
            parameters = analytics_parameters_parse(query=request.query_params)
        except InvalidParameters as exc:
            fields = {name: [message] for name, message in exc.errors.items()}
            return Response(
                {"error": "invalid", "detail": exc.message, "fields": fields}, status=status.HTTP_400_BAD_REQUEST
            )
        dashboard = analytics_dashboard(
            user=request.user,
            start=parameters.start,
            end=parameters.end,
            source=parameters.source,
            strategy=parameters.strategy,
            experiment=parameters.experiment,
            variant=parameters.variant,
        )
        return Response(dashboard_as_json(dashboard))
