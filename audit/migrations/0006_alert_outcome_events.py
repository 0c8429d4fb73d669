from django.db import migrations, models

# The event store's CHECK constraints (migration 0002) list every event type and source: an alert's
# resolution (``alert_resolved``, alerts/outcomes.py) and the alert presentation's source (``alert``, the
# audit log and ``presented`` events of alerts/ask.py and the alert page) join them. Widening a list keeps
# every stored row valid; the ADD still checks each partition once (a scan, no rewrite).
EVENT_TYPES_BEFORE = (
    "'presented', 'clicked_link', 'viewed_detail', 'started_execution', 'succeeded', 'failed', "
    "'abandoned', 'feedback_positive', 'feedback_negative'"
)
SOURCES_BEFORE = "'chat_page', 'widget', 'search_page', 'runbook_list', 'alert_page', 'direct'"


def _checks(event_types: str, sources: str) -> str:
    return f"""
ALTER TABLE runbook_interaction_events
    DROP CONSTRAINT runbook_interaction_events_event_type_check,
    DROP CONSTRAINT runbook_interaction_events_source_check;
ALTER TABLE runbook_interaction_events
    ADD CONSTRAINT runbook_interaction_events_event_type_check CHECK (event_type IN ({event_types})),
    ADD CONSTRAINT runbook_interaction_events_source_check CHECK (source IN ({sources}));
"""


FORWARD = _checks(EVENT_TYPES_BEFORE + ", 'alert_resolved'", SOURCES_BEFORE + ", 'alert'")
BACKWARD = _checks(EVENT_TYPES_BEFORE, SOURCES_BEFORE)

EVENT_TYPE_CHOICES = [
    ("presented", "Presented"),
    ("clicked_link", "Clicked link"),
    ("viewed_detail", "Viewed detail"),
    ("started_execution", "Started execution"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("abandoned", "Abandoned"),
    ("feedback_positive", "Feedback positive"),
    ("feedback_negative", "Feedback negative"),
    ("alert_resolved", "Alert resolved"),
]
SOURCE_CHOICES = [
    ("chat_page", "Chat page"),
    ("widget", "Widget"),
    ("search_page", "Search page"),
    ("runbook_list", "Runbook list"),
    ("alert_page", "Alert page"),
    ("alert", "Alert"),
    ("direct", "Direct"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_click_record_function"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.AlterField(
                    model_name="runbookinteractionevent",
                    name="event_type",
                    field=models.CharField(choices=EVENT_TYPE_CHOICES, max_length=30),
                ),
                migrations.AlterField(
                    model_name="runbookinteractionevent",
                    name="source",
                    field=models.CharField(choices=SOURCE_CHOICES, default="direct", max_length=30),
                ),
            ],
        ),
    ]
