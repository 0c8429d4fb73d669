"""Versions kept for every runbook, and ownership (owning group, review interval) — issue 20.

Each existing runbook gets the row of the version it has now (source "migration"): the text of its
earlier versions was never kept, so nothing older can be recovered. The snapshot below is a frozen copy
of runbooks/versions.py ``runbook_snapshot`` as of this migration (the fields added here are empty).
"""

import django.contrib.postgres.fields
import django.core.serializers.json
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


COLUMNS = (
    "name", "display_title", "description", "tags", "steps", "body_markdown", "service", "category",
    "is_automated", "automation_ref", "enabled", "status",
)


def forward(apps, schema_editor):
    Runbook = apps.get_model("runbooks", "Runbook")
    RunbookVersion = apps.get_model("runbooks", "RunbookVersion")
    now = django.utils.timezone.now()
    rows = []
    for runbook in Runbook.objects.prefetch_related("allowed_groups").iterator(chunk_size=500):
        snapshot = {name: getattr(runbook, name) for name in COLUMNS}
        snapshot.update(
            tags=list(runbook.tags or []),
            steps=list(runbook.steps or []),
            review_interval_days=None,
            owner_group="",
            allowed_groups=sorted(group.name for group in runbook.allowed_groups.all()),
        )
        rows.append(
            RunbookVersion(
                runbook_id=runbook.pk, number=runbook.version, snapshot=snapshot, changed_at=now, source="migration"
            )
        )
    RunbookVersion.objects.bulk_create(rows, batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('runbooks', '0008_status_origin'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='runbook',
            name='owner_group',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='owned_runbooks', to='auth.group'),
        ),
        migrations.AddField(
            model_name='runbook',
            name='review_interval_days',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='runbook',
            name='reviewed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='RunbookVersion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField()),
                ('snapshot', models.JSONField(default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('changed_fields', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=64), blank=True, default=list, size=None)),
                ('changed_at', models.DateTimeField()),
                ('source', models.CharField(max_length=20)),
                ('changed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('runbook', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='versions', to='runbooks.runbook')),
            ],
            options={
                'db_table': 'runbook_versions',
                'ordering': ['runbook', '-number'],
                'constraints': [models.UniqueConstraint(fields=('runbook', 'number'), name='runbook_version_unique')],
            },
        ),
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
