"""Alert intake: receivers (who may post), notifications as received, alert instances and the runbooks
recommended for them (docs/alerts.md)."""

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import MD5


class AlertReceiver(models.Model):
    """One webhook sender (an Alertmanager receiver or a Grafana contact point) with its bearer token.
    Only a SHA-256 of the token is stored; the token is shown once when it is created."""

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters of the token, so an operator can tell tokens apart without storing them.
    token_prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alert_receivers"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AlertFormat(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Alertmanager"
    GRAFANA = "grafana", "Grafana"


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class AlertGroup(models.Model):
    """An Alertmanager group (its ``groupKey``) as one receiver sends it; the newest notification's
    group-level fields."""

    receiver = models.ForeignKey("alerts.AlertReceiver", on_delete=models.PROTECT, related_name="groups")
    group_key = models.TextField()
    format = models.CharField(max_length=20, choices=AlertFormat.choices)
    status = models.CharField(max_length=10, choices=AlertStatus.choices)
    group_labels = models.JSONField(default=dict)
    common_labels = models.JSONField(default=dict)
    common_annotations = models.JSONField(default=dict)
    external_url = models.TextField(blank=True)
    title = models.TextField(blank=True)  # Grafana's title
    message = models.TextField(blank=True)  # Grafana's message
    truncated_alerts = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        db_table = "alert_groups"
        # On the key's MD5, not the key: a B-tree entry must fit a third of a page (~2.7 kB), and a groupKey may
        # be up to 8,192 characters (docs/alerts.md, "Limits"). alerts/sql.py's ON CONFLICT names the same.
        constraints = [
            models.UniqueConstraint(F("receiver"), MD5("group_key"), name="alert_group_receiver_key_md5"),
        ]
        indexes = [models.Index(name="alert_group_last_seen", fields=["-last_seen"])]

    def __str__(self) -> str:
        return self.group_key


class AlertNotification(models.Model):
    """Every webhook body as received (append-only): unknown fields are kept here."""

    receiver = models.ForeignKey("alerts.AlertReceiver", on_delete=models.PROTECT, related_name="notifications")
    group = models.ForeignKey("alerts.AlertGroup", on_delete=models.CASCADE, related_name="notifications")
    received_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=AlertStatus.choices)
    alert_count = models.PositiveIntegerField()
    payload = models.JSONField()

    class Meta:
        db_table = "alert_notifications"
        indexes = [
            models.Index(name="alert_notif_group_received", fields=["group", "-received_at"]),
            # Retention (alerts.retention) reads only the rows older than its cutoff (an index range), not the table.
            models.Index(name="alert_notif_received", fields=["received_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.status} x{self.alert_count} @ {self.received_at:%Y-%m-%d %H:%M:%S}"


class RecommendationState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Alert(models.Model):
    """One alert instance: Alertmanager's fingerprint and the time it started firing. Repeats of the same
    instance update ``last_seen``; a resolve sets ``ends_at`` and the status."""

    group = models.ForeignKey("alerts.AlertGroup", on_delete=models.CASCADE, related_name="alerts")
    # The receiver that first sent it (its group's): only that receiver's posts may change the alert.
    receiver = models.ForeignKey("alerts.AlertReceiver", on_delete=models.PROTECT, related_name="alerts")
    fingerprint = models.CharField(max_length=64)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=AlertStatus.choices)
    alertname = models.CharField(max_length=200, blank=True)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    generator_url = models.TextField(blank=True)
    # Grafana's per-alert extras (values, dashboardURL, panelURL, silenceURL, ...) and unknown fields.
    extra = models.JSONField(default=dict, blank=True)
    first_received_at = models.DateTimeField()
    last_seen = models.DateTimeField()
    resolved_received_at = models.DateTimeField(null=True, blank=True)
    recommendation_state = models.CharField(
        max_length=10, choices=RecommendationState.choices, default=RecommendationState.PENDING
    )
    recommended_at = models.DateTimeField(null=True, blank=True)
    # The query the recommendation task searched with (for the page's "why" and for debugging).
    recommendation_query = models.TextField(blank=True)

    class Meta:
        db_table = "alerts"
        constraints = [models.UniqueConstraint(fields=["fingerprint", "starts_at"], name="alert_fingerprint_starts")]
        indexes = [
            models.Index(name="alert_status_starts", fields=["status", "-starts_at"]),
            # The page's "resolved in the last 24 h" (alerts/selectors.py) on a table that only grows.
            models.Index(name="alert_status_ends", fields=["status", "-ends_at"]),
            models.Index(name="alert_group", fields=["group"]),
        ]

    def __str__(self) -> str:
        return f"{self.alertname or self.fingerprint} @ {self.starts_at:%Y-%m-%d %H:%M}"


class RecommendationEvidence(models.TextChoices):
    LINKED = "linked", "Linked by the alert rule"
    ALIAS = "alias", "Alert name matches the runbook"
    SEARCH = "search", "Hybrid search"


class AlertRecommendation(models.Model):
    """The stored ranking for an alert over the whole catalogue; what a viewer sees is this filtered to
    the runbooks they may see and re-ranked 1..n."""

    alert = models.ForeignKey("alerts.Alert", on_delete=models.CASCADE, related_name="recommendations")
    runbook = models.ForeignKey("runbooks.Runbook", on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField()
    confidence = models.FloatField()
    recommended = models.BooleanField()
    evidence = models.CharField(max_length=10, choices=RecommendationEvidence.choices)
    reason = models.TextField()

    class Meta:
        db_table = "alert_recommendations"
        ordering = ["alert", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "runbook"], name="alert_rec_runbook"),
            models.UniqueConstraint(fields=["alert", "rank"], name="alert_rec_rank"),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.runbook_id} ({self.confidence:.2f})"


class AlertPresentation(models.Model):
    """The one audited presentation of an alert's recommendations to one user (source ``alert``)."""

    alert = models.ForeignKey("alerts.Alert", on_delete=models.CASCADE, related_name="presentations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    audit_log = models.OneToOneField("audit.AuditLog", on_delete=models.CASCADE, related_name="alert_presentation")
    presented_at = models.DateTimeField()

    class Meta:
        db_table = "alert_presentations"
        constraints = [models.UniqueConstraint(fields=["alert", "user"], name="alert_presentation_user")]

    def __str__(self) -> str:
        return f"alert {self.alert_id} to user {self.user_id}"


class AlertSession(models.Model):
    """A chat session opened with "Ask about this alert"."""

    alert = models.ForeignKey("alerts.Alert", on_delete=models.CASCADE, related_name="sessions")
    session = models.OneToOneField("aihelper.ChatSession", on_delete=models.CASCADE, related_name="alert_link")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "alert_sessions"

    def __str__(self) -> str:
        return f"alert {self.alert_id} in session {self.session_id}"
