"""GET /api/analytics/metrics: every metric of docs/analytics.md as JSON (staff only)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aihelper.core.api_errors import ERROR_BODY
from analytics.services.dashboard import analytics_dashboard
from analytics.services.presentation import dashboard_as_json
from analytics.services.ranges import InvalidRange, analytics_range_parse


class IsStaff(permissions.BasePermission):
    message = "Analytics are for staff only."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class MetricsApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]

    class InputSerializer(serializers.Serializer):
        start = serializers.CharField(required=False, allow_blank=True, max_length=40)
        end = serializers.CharField(required=False, allow_blank=True, max_length=40)
        source = serializers.CharField(required=False, allow_blank=True, max_length=30)
        strategy = serializers.CharField(required=False, allow_blank=True, max_length=40)
        experiment = serializers.CharField(required=False, allow_blank=True, max_length=100)
        variant = serializers.CharField(required=False, allow_blank=True, max_length=100)

    @extend_schema(
        parameters=[
            OpenApiParameter("start", str, description="ISO 8601 date (whole day, settings.TIME_ZONE) or date-time"),
            OpenApiParameter("end", str, description="ISO 8601 date (inclusive) or date-time (exclusive)"),
            OpenApiParameter("source", str),
            OpenApiParameter("strategy", str),
            OpenApiParameter("experiment", str),
            OpenApiParameter("variant", str),
        ],
        responses={
            200: dict,
            400: OpenApiResponse(ERROR_BODY, description="Invalid range or filter"),
            401: OpenApiResponse(ERROR_BODY, description="Not logged in"),
            403: OpenApiResponse(ERROR_BODY, description="Not staff"),
        },
    )
    def get(self, request):
        serializer = self.InputSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            start, end = analytics_range_parse(start=data.get("start"), end=data.get("end"))
        except InvalidRange as exc:
            return Response(
                {"error": "invalid", "detail": exc.message, "fields": {exc.field: [exc.message]}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        dashboard = analytics_dashboard(
            user=request.user,
            start=start,
            end=end,
            source=data.get("source"),
            strategy=data.get("strategy"),
            experiment=data.get("experiment"),
            variant=data.get("variant"),
        )
        return Response(dashboard_as_json(dashboard))
