import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models

# Alerts remember the receiver that sent them (only its posts may change them); rows stored before this take
# their group's receiver.
BACKFILL = "UPDATE alerts SET receiver_id = g.receiver_id FROM alert_groups g WHERE g.id = alerts.group_id"


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="alert",
            name="receiver",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="alerts",
                to="alerts.alertreceiver",
            ),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="alert",
            name="receiver",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="alerts", to="alerts.alertreceiver"
            ),
        ),
        migrations.RemoveConstraint(
            model_name="alertgroup",
            name="alert_group_receiver_key",
        ),
        migrations.AddConstraint(
            model_name="alertgroup",
            constraint=models.UniqueConstraint(
                models.F("receiver"),
                django.db.models.functions.text.MD5("group_key"),
                name="alert_group_receiver_key_md5",
            ),
        ),
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(fields=["status", "-ends_at"], name="alert_status_ends"),
        ),
    ]
