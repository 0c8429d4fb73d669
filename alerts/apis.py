"""GET /api/alerts/: alerts with the runbooks recommended for them, as the reader may see them.

Not audited: an API client reading the list is not an engineer shown recommendations at a decision, and
it has no card to click; the alerts page records the one presentation per (user, alert)
(alerts/presenting.py, docs/alerts.md, "Where engineers see it").
"""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.pagination import PageNumberPagination
from rest_framework.views import APIView

from aihelper.core.api_errors import ERROR_BODY
from alerts.models import Alert
from alerts.presenting import ViewerRanking, viewer_ranking, viewer_rules
from alerts.selectors import alerts_by_status
from alerts.serializers import AlertListInputSerializer, AlertPageSerializer, AlertSerializer

PAGE_SIZE = 50


class AlertPagination(PageNumberPagination):
    page_size = PAGE_SIZE


@dataclass(frozen=True)
class AlertRow:
    alert: Alert
    ranking: ViewerRanking


class AlertListApi(APIView):
    @extend_schema(
        operation_id="alerts_list",
        parameters=[
            AlertListInputSerializer,
            OpenApiParameter("page", int, description=f"1-based page of {PAGE_SIZE} alerts"),
        ],
        responses={
            200: AlertPageSerializer,
            400: OpenApiResponse(ERROR_BODY, description="Invalid status: `fields.status` says why"),
            401: OpenApiResponse(ERROR_BODY, description="Not logged in (no or a wrong token)"),
            404: OpenApiResponse(ERROR_BODY, description="No such page"),
        },
        description="Alerts with the given status, newest first (by starts_at), each with the runbooks "
        "recommended for it: the stored ranking filtered to the runbooks the reader may see and re-ranked "
        "1..n. Reading this list is not audited (the alerts page records what it presents).",
    )
    def get(self, request):
        params = AlertListInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        paginator = AlertPagination()
        alerts = paginator.paginate_queryset(
            alerts_by_status(user=request.user, status=params.validated_data["status"]), request, view=self
        )
        rules = viewer_rules(user=request.user, with_groups=False)
        rows = [AlertRow(alert=alert, ranking=viewer_ranking(alert=alert, rules=rules)) for alert in alerts]
        return paginator.get_paginated_response(AlertSerializer(rows, many=True).data)
