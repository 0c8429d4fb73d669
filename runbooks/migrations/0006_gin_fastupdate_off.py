import django.contrib.postgres.indexes
from django.db import migrations

# Both full-text GIN indexes without the "fast update" pending list. With it, new and updated rows
# wait in an unsorted list that every search scans linearly until (auto)vacuum merges it: after a
# 10k-runbook import the title leg took p50 7.8 / p95 17.7 ms, 2.4 / 6.0 ms once merged
# (docs/retrieval.md). Runbooks are written rarely and searched constantly, so writes pay the merge.
# Not atomic, one statement at a time: ALTER INDEX ... SET takes an ACCESS EXCLUSIVE lock on the index,
# which should last for that statement only, not for the whole migration on a live database.
FORWARD = [
    "ALTER INDEX runbooks_search_vector_gin SET (fastupdate = off)",
    "SELECT gin_clean_pending_list('runbooks_search_vector_gin'::regclass)",
    "ALTER INDEX runbooks_search_title_gin SET (fastupdate = off)",
    "SELECT gin_clean_pending_list('runbooks_search_title_gin'::regclass)",
]
BACKWARD = [
    "ALTER INDEX runbooks_search_vector_gin RESET (fastupdate)",
    "ALTER INDEX runbooks_search_title_gin RESET (fastupdate)",
]


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("runbooks", "0005_execution_source")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.RemoveIndex(model_name="runbook", name="runbooks_search_vector_gin"),
                migrations.AddIndex(
                    model_name="runbook",
                    index=django.contrib.postgres.indexes.GinIndex(
                        fastupdate=False, fields=["search_vector"], name="runbooks_search_vector_gin"
                    ),
                ),
            ],
        )
    ]
