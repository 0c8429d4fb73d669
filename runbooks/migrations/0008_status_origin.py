"""Lifecycle status and origin of each runbook (issue 20).

Existing rows are all ``active``. Their origin: the demo runbooks are the ones whose slug is under
``demo/`` (runbooks/demo_data/demo_runbooks.jsonl, every slug there starts with it, and nothing else
creates such slugs); every other existing row is taken as imported (``import``, source unknown: ""),
as the contract of issue 20 says: the catalogue was loaded with ``import_runbooks``, and a runbook added
in the admin before now cannot be told apart from one imported (nothing recorded it). ``import_runbooks
--sync --source NAME`` adopts such a row when the folder holds its slug (docs/authoring.md).
"""

from django.db import migrations, models


def forward(apps, schema_editor):
    Runbook = apps.get_model("runbooks", "Runbook")
    Runbook.objects.filter(slug__startswith="demo/").update(origin="demo")
    Runbook.objects.exclude(slug__startswith="demo/").update(origin="import")


class Migration(migrations.Migration):
    dependencies = [("runbooks", "0007_front_matter_fields")]

    operations = [
        migrations.AddField(
            model_name="runbook",
            name="status",
            field=models.CharField(
                choices=[("draft", "Draft"), ("active", "Active"), ("retired", "Retired")],
                db_index=True,
                default="active",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="runbook",
            name="origin",
            field=models.CharField(
                choices=[
                    ("admin", "Written in the admin"),
                    ("demo", "Demo data"),
                    ("import", "Imported"),
                    ("gap_report", "Drafted from the knowledge-gap report"),
                ],
                default="admin",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="runbook",
            name="origin_source",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
