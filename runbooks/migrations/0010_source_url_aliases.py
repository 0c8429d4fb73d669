"""A runbook's published address (``source_url``) and the alert names it answers (``aliases``), issue 19.

An alert is linked to a runbook when its ``runbook_url`` annotation is the runbook's address (compared
without case: ``runbooks_source_url_lower_idx``), and named by it when its ``alertname`` is the runbook's
name or one of its aliases, without case: ``runbook_alert_names(name, aliases)`` is that set lower-cased,
GIN-indexed (``@>``). The function is IMMUTABLE (it reads only its arguments), so it can be indexed.
"""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.core.validators
import django.db.models.functions.text
import runbooks.models
from django.db import migrations, models


ALERT_NAMES_FUNCTION = """
CREATE OR REPLACE FUNCTION runbook_alert_names(name text, aliases varchar[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_prepend(lower(name), ARRAY(SELECT lower(alias) FROM unnest(aliases) AS alias))
$$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('runbooks', '0009_versions_ownership'),
    ]

    operations = [
        migrations.RunSQL(
            sql=ALERT_NAMES_FUNCTION,
            reverse_sql="DROP FUNCTION IF EXISTS runbook_alert_names(text, varchar[]);",
        ),
        migrations.AddField(
            model_name='runbook',
            name='aliases',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=200), blank=True, default=list, size=None, validators=[runbooks.models.validate_aliases], verbose_name='alert names (aliases)'),
        ),
        migrations.AddField(
            model_name='runbook',
            name='source_url',
            field=models.URLField(blank=True, max_length=500, verbose_name='source URL', validators=[django.core.validators.URLValidator(message='Give the address where the runbook is published: an http(s) URL.', schemes=['http', 'https'])]),
        ),
        migrations.AddIndex(
            model_name='runbook',
            index=models.Index(django.db.models.functions.text.Lower('source_url'), name='runbooks_source_url_lower_idx'),
        ),
        migrations.AddIndex(
            model_name='runbook',
            index=django.contrib.postgres.indexes.GinIndex(models.Func(models.F('name'), models.F('aliases'), function='runbook_alert_names', output_field=django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), size=None)), fastupdate=False, name='runbooks_alert_names_gin'),
        ),
    ]
