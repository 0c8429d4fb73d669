"""The shapes of GET /api/alerts/ (documented in the OpenAPI schema through alerts/apis.py)."""

from __future__ import annotations

from rest_framework import serializers

from alerts.models import AlertStatus, RecommendationEvidence, RecommendationState


class AlertListInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=AlertStatus.choices, required=False, default=AlertStatus.FIRING,
        help_text="firing (the default) or resolved.",
    )


class RecommendationSerializer(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    confidence = serializers.FloatField(help_text="Calibrated probability that this runbook is a right one (0..1).")
    rank = serializers.IntegerField(help_text="1..n among the runbooks the reader may see (re-ranked).")
    recommended = serializers.BooleanField(
        help_text="rank <= max_recommended and confidence >= the threshold, under the reader's experiment variant."
    )
    reason = serializers.CharField(help_text="Why it is in the ranking, in words.")
    evidence = serializers.ChoiceField(
        choices=RecommendationEvidence.choices, help_text="linked (the rule's runbook_url) | alias | search."
    )
    url = serializers.CharField(help_text="The runbook page (relative).")


class AlertGroupSerializer(serializers.Serializer):
    key = serializers.CharField(source="group_key", help_text="Alertmanager's groupKey.")
    labels = serializers.DictField(source="group_labels", child=serializers.CharField())


class AlertSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="alert.id")
    fingerprint = serializers.CharField(source="alert.fingerprint")
    starts_at = serializers.DateTimeField(source="alert.starts_at")
    ends_at = serializers.DateTimeField(source="alert.ends_at", allow_null=True)
    status = serializers.ChoiceField(source="alert.status", choices=AlertStatus.choices)
    alertname = serializers.CharField(source="alert.alertname")
    labels = serializers.DictField(source="alert.labels", child=serializers.CharField())
    annotations = serializers.DictField(source="alert.annotations", child=serializers.CharField())
    group = AlertGroupSerializer(source="alert.group")
    recommendation_state = serializers.ChoiceField(
        source="alert.recommendation_state", choices=RecommendationState.choices,
        help_text="pending (not ranked yet) | done | failed.",
    )
    presentation_strategy = serializers.CharField(
        source="ranking.strategy", help_text="For the recommended runbooks' confidences (docs/retrieval.md)."
    )
    recommendations = RecommendationSerializer(
        source="ranking.cards", many=True,
        help_text="The stored ranking filtered to the runbooks the reader may see, re-ranked 1..n.",
    )


class AlertPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = AlertSerializer(many=True)
