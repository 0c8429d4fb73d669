import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AuditLog(models.Model):
    """One row per answer shown to an engineer. Shapes of the JSON columns: docs/data-model.md."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ai_audit_logs")
    session = models.ForeignKey(
        "aihelper.ChatSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_logs"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    query = models.TextField()
    response = models.TextField(blank=True)
    ai_action_details = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    user_modifications = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    source = models.CharField(max_length=30, default="direct")
    llm_provider = models.CharField(max_length=50, blank=True)
    llm_model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    degraded = models.BooleanField(default=False)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "ai_helper_audit_logs"
        ordering = ["-created_at"]
        indexes = [
            models.Index(name="audit_logs_session_created", fields=["session", "-created_at"]),
            models.Index(name="audit_logs_user_created", fields=["user", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.query[:40]}"


class EventType(models.TextChoices):
    PRESENTED = "presented", "Presented"
    CLICKED_LINK = "clicked_link", "Clicked link"
    VIEWED_DETAIL = "viewed_detail", "Viewed detail"
    STARTED_EXECUTION = "started_execution", "Started execution"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned"
    FEEDBACK_POSITIVE = "feedback_positive", "Feedback positive"
    FEEDBACK_NEGATIVE = "feedback_negative", "Feedback negative"
    # The alert a presentation was about resolved (one per alert presentation; alerts/outcomes.py). Not a step
    # of the funnel and not an interaction with the runbook it is filed under (its presentation's first).
    ALERT_RESOLVED = "alert_resolved", "Alert resolved"


class EventSource(models.TextChoices):
    CHAT_PAGE = "chat_page", "Chat page"
    WIDGET = "widget", "Widget"
    SEARCH_PAGE = "search_page", "Search page"
    RUNBOOK_LIST = "runbook_list", "Runbook list"
    ALERT_PAGE = "alert_page", "Alert page"
    # An alert's recommendations as presented (the audit log of an alert presentation, its ``presented`` and
    # ``alert_resolved`` events); clicks on the alert page's cards keep ``alert_page``.
    ALERT = "alert", "Alert"
    DIRECT = "direct", "Direct"


class RunbookInteractionEvent(models.Model):
    """Append-only event store, partitioned by month on event_timestamp (migration 0002).

    event_id is unique across all partitions: a trigger records it in
    runbook_interaction_event_ids, so a repeated client event_id is refused by the database.
    """

    pk = models.CompositePrimaryKey("event_id", "event_timestamp")
    event_id = models.UUIDField()
    event_timestamp = models.DateTimeField(default=timezone.now)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, related_name="+")
    session = models.ForeignKey("aihelper.ChatSession", null=True, on_delete=models.DO_NOTHING, related_name="+")
    audit_log = models.ForeignKey("audit.AuditLog", null=True, on_delete=models.DO_NOTHING, related_name="+")
    runbook = models.ForeignKey("runbooks.Runbook", on_delete=models.DO_NOTHING, related_name="+")
    event_type = models.CharField(max_length=30, choices=EventType.choices)
    rank = models.PositiveSmallIntegerField(null=True)
    source = models.CharField(max_length=30, choices=EventSource.choices, default=EventSource.DIRECT)
    client_timestamp = models.DateTimeField(null=True)
    experiment = models.CharField(max_length=100, blank=True)
    variant = models.CharField(max_length=100, blank=True)
    page_context = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    metadata = models.JSONField(default=dict, encoder=DjangoJSONEncoder)

    class Meta:
        # Created as a partitioned table by raw SQL in migration 0002 (state-only in Django), but
        # managed so that test flushes truncate it.
        db_table = "runbook_interaction_events"
        ordering = ["-event_timestamp"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.runbook_id} @ {self.event_timestamp:%Y-%m-%d %H:%M:%S}"


class EventIdClaim(models.Model):
    """Global uniqueness of event ids across partitions; rows written only by a database trigger."""

    event_id = models.UUIDField(primary_key=True)
    event_timestamp = models.DateTimeField()

    class Meta:
        db_table = "runbook_interaction_event_ids"

    def __str__(self) -> str:
        return str(self.event_id)


class InteractionEventRow(models.Model):
    """Read-only view of the same table for the admin, which cannot register composite keys (Django 5.2).

    event_id alone is a valid key because the id trigger keeps it unique across partitions.
    """

    event_id = models.UUIDField(primary_key=True)
    event_timestamp = models.DateTimeField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, related_name="+")
    session = models.ForeignKey("aihelper.ChatSession", null=True, on_delete=models.DO_NOTHING, related_name="+")
    audit_log = models.ForeignKey("audit.AuditLog", null=True, on_delete=models.DO_NOTHING, related_name="+")
    runbook = models.ForeignKey("runbooks.Runbook", on_delete=models.DO_NOTHING, related_name="+")
    event_type = models.CharField(max_length=30, choices=EventType.choices)
    rank = models.PositiveSmallIntegerField(null=True)
    source = models.CharField(max_length=30, choices=EventSource.choices)
    client_timestamp = models.DateTimeField(null=True)
    experiment = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    page_context = models.JSONField()
    metadata = models.JSONField()

    class Meta:
        db_table = "runbook_interaction_events"
        managed = False
        ordering = ["-event_timestamp"]
        verbose_name = "interaction event"

    def __str__(self) -> str:
        return f"{self.event_type} {self.runbook_id}"
