"""Reads for the alerts page and GET /api/alerts/: alerts with their group, and the stored ranking already
filtered to the runbooks the reader may see (docs/alerts.md, "Where engineers see it").

Each function returns a QuerySet whose related rows come in a fixed number of queries whatever the number
of alerts: the group and receiver joined, the visible recommendations (with their runbook and its allowed
groups) and the reader's own presentation prefetched.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import F, Prefetch, QuerySet

from alerts.models import Alert, AlertPresentation, AlertRecommendation, AlertStatus
from runbooks.search import searchable_runbooks

# Set on each alert by the prefetches below: its visible recommendations by stored rank, and the reader's
# presentation of it (a list of zero or one).
VISIBLE_RECOMMENDATIONS = "visible_recommendations"
VIEWER_PRESENTATIONS = "viewer_presentations"


def _with_rows(
    queryset: QuerySet[Alert], *, user, presentations: bool, recommendations: bool = True
) -> QuerySet[Alert]:
    queryset = queryset.select_related("group__receiver")
    if not recommendations:
        return queryset
    visible = (
        AlertRecommendation.objects.filter(runbook__in=searchable_runbooks(user))
        .select_related("runbook")
        .prefetch_related("runbook__allowed_groups")
        .order_by("rank")
    )
    prefetches = [Prefetch("recommendations", queryset=visible, to_attr=VISIBLE_RECOMMENDATIONS)]
    if presentations:
        own = AlertPresentation.objects.filter(user=user).select_related("audit_log")
        prefetches.append(Prefetch("presentations", queryset=own, to_attr=VIEWER_PRESENTATIONS))
    return queryset.prefetch_related(*prefetches)


def alerts_firing(*, user, presentations: bool = True) -> QuerySet[Alert]:
    """Firing alerts, newest first (by ``starts_at``)."""
    queryset = Alert.objects.filter(status=AlertStatus.FIRING).order_by("-starts_at", "-pk")
    return _with_rows(queryset, user=user, presentations=presentations)


def alerts_resolved_since(*, user, since: dt.datetime) -> QuerySet[Alert]:
    """Alerts resolved at or after ``since``, the most recently resolved first (without their rankings: the
    page lists them without runbooks)."""
    queryset = Alert.objects.filter(status=AlertStatus.RESOLVED, ends_at__gte=since).order_by(
        F("ends_at").desc(), "-pk"
    )
    return _with_rows(queryset, user=user, presentations=False, recommendations=False)


def alerts_by_status(*, user, status: str) -> QuerySet[Alert]:
    """Alerts with ``status`` (firing or resolved), newest first (by ``starts_at``): the API's list."""
    queryset = Alert.objects.filter(status=status).order_by("-starts_at", "-pk")
    return _with_rows(queryset, user=user, presentations=False)
