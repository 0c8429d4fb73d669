"""Rows for the alerts page and API tests, written straight with the ORM: a receiver, an Alertmanager group,
alerts in each state and their stored ranking (intake and the recommendation worker are not under test)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

from django.utils import timezone

from alerts.models import (
    Alert,
    AlertFormat,
    AlertGroup,
    AlertReceiver,
    AlertRecommendation,
    AlertStatus,
    RecommendationEvidence,
    RecommendationState,
)

_serial = itertools.count(1)


def page_group(*, receiver: str = "alertmanager-prod", key: str = "", labels: dict | None = None,
               external_url: str = "") -> AlertGroup:
    row, _ = AlertReceiver.objects.get_or_create(
        name=receiver,
        defaults={"token_hash": hashlib.sha256(receiver.encode()).hexdigest(), "token_prefix": receiver[:12]},
    )
    now = timezone.now()
    labels = {"alertname": "KubePodCrashLooping"} if labels is None else labels
    return AlertGroup.objects.create(
        receiver=row,
        group_key=key or f"{{}}:{labels}/{next(_serial)}",
        format=AlertFormat.ALERTMANAGER,
        status=AlertStatus.FIRING,
        group_labels=labels,
        external_url=external_url,
        first_seen=now,
        last_seen=now,
    )


def page_alert(
    *,
    group: AlertGroup | None = None,
    alertname: str = "KubePodCrashLooping",
    minutes_ago: float = 12,
    labels: dict | None = None,
    annotations: dict | None = None,
    state: str = RecommendationState.DONE,
    status: str = AlertStatus.FIRING,
    resolved_minutes_ago: float | None = None,
    generator_url: str = "",
    query: str = "",
) -> Alert:
    now = timezone.now()
    starts_at = now - dt.timedelta(minutes=minutes_ago)
    ends_at = now - dt.timedelta(minutes=resolved_minutes_ago) if resolved_minutes_ago is not None else None
    group = group or page_group()
    return Alert.objects.create(
        group=group,
        receiver_id=group.receiver_id,
        fingerprint=f"{next(_serial):016x}",
        starts_at=starts_at,
        ends_at=ends_at,
        status=AlertStatus.RESOLVED if ends_at else status,
        alertname=alertname,
        labels={"alertname": alertname, "severity": "critical", **(labels or {})},
        annotations={"summary": f"{alertname} is firing", **(annotations or {})},
        generator_url=generator_url,
        first_received_at=starts_at,
        last_seen=now,
        recommendation_state=state,
        recommended_at=now if state == RecommendationState.DONE else None,
        recommendation_query=query or (alertname if state == RecommendationState.DONE else ""),
    )


def rank_runbooks(alert: Alert, *rows) -> list[AlertRecommendation]:
    """The stored ranking: each row is (runbook, confidence) or (runbook, confidence, evidence); ranks 1..n in
    order, ``recommended`` by the worker's rule at the default settings (rank <= 3, confidence >= 0.5)."""
    created = []
    for rank, row in enumerate(rows, start=1):
        runbook, confidence, *rest = row
        evidence = rest[0] if rest else RecommendationEvidence.SEARCH
        reason = "Linked by the alert rule (runbook_url)" if evidence == RecommendationEvidence.LINKED else (
            "Search: similar in meaning (80%)")
        created.append(AlertRecommendation.objects.create(
            alert=alert, runbook=runbook, rank=rank, confidence=confidence,
            recommended=rank <= 3 and confidence >= 0.5, evidence=evidence, reason=reason,
        ))
    return created
