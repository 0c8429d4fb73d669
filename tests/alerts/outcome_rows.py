"""Rows for the ask and outcome tests: an alert with its stored recommendations, and an alert presentation
as the alert page writes it (an audit log of source ``alert`` + AlertPresentation), straight with the ORM
and audit's own writer (the page and the worker are not under test here)."""

from __future__ import annotations

import datetime as dt

from alerts.models import Alert, AlertPresentation, AlertRecommendation, RecommendationEvidence, RecommendationState
from alerts.presenting import presentation_context
from audit.details import ActionDetails
from audit.models import EventSource
from audit.services.store import audit_log_create
from tests.alerts.alert_rows import alert_row
from tests.audit.factories import default_strategy, presented_solutions


def recommended_alert(
    *,
    runbooks,
    alertname: str = "PostgresReplicationLag",
    summary: str = "Replica db-2 is 15 minutes behind the primary.",
    confidences=None,
    starts_at: dt.datetime | None = None,
    **fields,
) -> Alert:
    """A firing alert whose recommendation is done: ``runbooks`` recommended at ranks 1, 2, ..."""
    alert = alert_row(
        alertname=alertname,
        annotations={"summary": summary},
        recommendation_state=RecommendationState.DONE,
        recommendation_query=f"{alertname} {summary}",
        **fields,
    )
    if starts_at is not None:
        Alert.objects.filter(pk=alert.pk).update(starts_at=starts_at)
        alert.refresh_from_db()
    confidences = confidences or [0.9 - 0.1 * index for index in range(len(runbooks))]
    AlertRecommendation.objects.bulk_create(
        AlertRecommendation(
            alert=alert,
            runbook=runbook,
            rank=rank,
            confidence=confidence,
            recommended=True,
            evidence=RecommendationEvidence.SEARCH,
            reason="test",
        )
        for rank, (runbook, confidence) in enumerate(zip(runbooks, confidences, strict=True), start=1)
    )
    return alert


def alert_presentation(
    *, alert: Alert, user, runbooks, created_at: dt.datetime | None = None, with_context: bool = True
) -> AlertPresentation:
    """``user``'s presentation of ``alert`` showing ``runbooks`` at ranks 1..n, as the alert page writes it
    (with its page context, which carries the alert's start; ``with_context`` False: a log without it)."""
    context = presentation_context(alert) if with_context else {}
    solutions = presented_solutions(runbooks)
    audit_log = audit_log_create(
        user=user,
        session=None,
        query=alert.recommendation_query or alert.alertname,
        response="",
        details=ActionDetails(
            solutions=solutions, presentation_strategy=default_strategy(len(solutions)), page_context=context
        ),
        source=EventSource.ALERT,
        page_context=context,
        created_at=created_at,
    )
    return AlertPresentation.objects.create(
        alert=alert, user=user, audit_log=audit_log, presented_at=audit_log.created_at
    )
