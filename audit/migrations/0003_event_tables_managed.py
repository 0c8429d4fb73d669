import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """State only: both tables were created by the raw SQL of 0002."""

    dependencies = [
        ("audit", "0002_partitioned_event_store"),
        ("runbooks", "0003_search_vector_trigger"),
        ("aihelper", "0002_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="EventIdClaim",
                    fields=[
                        ("event_id", models.UUIDField(primary_key=True, serialize=False)),
                        ("event_timestamp", models.DateTimeField()),
                    ],
                    options={"db_table": "runbook_interaction_event_ids"},
                ),
                migrations.AddField(
                    model_name="runbookinteractionevent",
                    name="user",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AddField(
                    model_name="runbookinteractionevent",
                    name="session",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="aihelper.chatsession",
                    ),
                ),
                migrations.AddField(
                    model_name="runbookinteractionevent",
                    name="audit_log",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="audit.auditlog",
                    ),
                ),
                migrations.AddField(
                    model_name="runbookinteractionevent",
                    name="runbook",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="runbooks.runbook",
                    ),
                ),
                migrations.AddField(
                    model_name="interactioneventrow",
                    name="user",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AddField(
                    model_name="interactioneventrow",
                    name="session",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="aihelper.chatsession",
                    ),
                ),
                migrations.AddField(
                    model_name="interactioneventrow",
                    name="audit_log",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="audit.auditlog",
                    ),
                ),
                migrations.AddField(
                    model_name="interactioneventrow",
                    name="runbook",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="runbooks.runbook",
                    ),
                ),
                migrations.AlterModelOptions(
                    name="runbookinteractionevent",
                    options={"ordering": ["-event_timestamp"]},
                ),
            ],
        ),
    ]
