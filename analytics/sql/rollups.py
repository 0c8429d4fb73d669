"""The daily rollups' rebuild: the per-log counts, presentations and duration buckets of whole settled days,
per audience, from the facts tables (docs/analytics.md, Rollups). Reads of the rollups are in
analytics.sql.metrics and analytics.sql.funnel (their rollup branches)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from django.db import connection
from psycopg import sql

from analytics.sql.common import MetricFilter, bucket_of, per_log_ctes, visible_clause
from analytics.sql.funnel import FUNNEL_STEP_SECONDS
from analytics.sql.metrics import ABANDON_AFTER, DECISION_SECONDS, LOG_CELL_COUNTS

ROLLUP_TABLES = ("analytics_daily_logs", "analytics_daily_pairs", "analytics_daily_histograms")
DELETE_AUDIENCE_DAYS = sql.SQL(
    "DELETE FROM {table} WHERE audience_id = %(audience)s AND day >= %(first_day)s AND day < %(end_day)s"
)
DELETE_RUNBOOK_DAYS = sql.SQL("DELETE FROM analytics_daily_runbooks WHERE day >= %(first_day)s AND day < %(end_day)s")

# Coarse (per strategy) and detailed (per strategy, source, experiment, variant) rows in one pass.
LEVELS = "GROUPING SETS (({keys}), ({keys}, source, experiment, variant))"
LEVEL_COLUMNS = "GROUPING(source) = 0, COALESCE(source, ''), COALESCE(experiment, ''), COALESCE(variant, '')"

# After per_log_ctes: the cells of the per-log counts and the time-to-decision buckets, in one statement.
LOG_ROLLUP_INSERT = """,
log_cells AS (
    INSERT INTO analytics_daily_logs (audience_id, day, strategy, source, experiment, variant, logs, recommended,
                                      clicked, rank1, multi, rr_sum, abandoned)
    SELECT %(audience)s, (created_at AT TIME ZONE %(tz)s)::date, strategy, source, experiment, variant,
           {counts},
           count(*) FILTER (WHERE presented AND (first_click_at IS NULL
                                                 OR first_click_at >= created_at + %(abandon_after)s))
    FROM per_log GROUP BY 2, 3, 4, 5, 6
    RETURNING 1
)
INSERT INTO analytics_daily_histograms (audience_id, day, strategy, detailed, source, experiment, variant, measure,
                                        bucket, count)
SELECT %(audience)s, day, strategy, {level_columns}, 0, bucket, count(*)
FROM (
    SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, strategy, source, experiment, variant, {bucket} AS bucket
    FROM per_log WHERE first_click_at IS NOT NULL
) b
GROUP BY {levels}"""

PAIR_ROLLUP_INSERT = """WITH src AS MATERIALIZED (
    SELECT f.runbook_id, f.source, f.strategy, f.experiment, f.variant, f.rank, f.carried_over, f.presented_at,
           f.clicked_at, f.viewed_at, f.started_at, f.succeeded_at, (f.created_at AT TIME ZONE %(tz)s)::date AS day
    FROM analytics_pair_facts f WHERE f.created_at >= %(start)s AND f.created_at < %(end)s{vis}
),
pair_cells AS (
    INSERT INTO analytics_daily_pairs (audience_id, day, strategy, detailed, source, experiment, variant, rank,
                                       carried_over, impressions, clicks, viewed, started, succeeded)
    SELECT %(audience)s, day, strategy, {level_columns}, rank, carried_over, count(*), count(clicked_at),
           count(viewed_at), count(started_at), count(succeeded_at)
    FROM src GROUP BY {pair_levels}
    RETURNING 1
){runbooks}
INSERT INTO analytics_daily_histograms (audience_id, day, strategy, detailed, source, experiment, variant, measure,
                                        bucket, count)
SELECT %(audience)s, day, {hist_columns}, measure, bucket, count(*)
FROM (
    SELECT s.day, s.strategy, s.source, s.experiment, s.variant, m.measure, {bucket} AS bucket
    FROM src s {steps} WHERE m.seconds IS NOT NULL
) b
GROUP BY {hist_levels}"""

# Per runbook, and for the funnel's step times, the coarse rows have no strategy either (strategy ''): a few
# hundred rows a day instead of thousands; a strategy filter reads the detailed rows.
RUNBOOK_LEVELS = "GROUPING SETS ((day, runbook_id), (day, runbook_id, strategy, source, experiment, variant))"
FUNNEL_HIST_LEVELS = (
    "GROUPING SETS ((day, measure, bucket), (day, measure, bucket, strategy, source, experiment, variant))"
)
NO_STRATEGY_LEVEL_COLUMNS = f"COALESCE(strategy, ''), {LEVEL_COLUMNS}"

# The per-runbook rollup does not depend on the audience (readers filter it by runbook id): written once,
# with the everyone audience.
RUNBOOK_ROLLUP_INSERT = """,
runbook_cells AS (
    INSERT INTO analytics_daily_runbooks (day, strategy, detailed, source, experiment, variant, runbook_id,
                                          impressions, clicks, click_rank_sum)
    SELECT day, {level_columns}, runbook_id, count(*), count(clicked_at),
           COALESCE(sum(rank) FILTER (WHERE clicked_at IS NOT NULL), 0)
    FROM src GROUP BY {runbook_levels}
    RETURNING 1
)"""


def _levels(keys: str) -> sql.Composable:
    return sql.SQL(LEVELS.format(keys=keys))


def rollups_rebuild(
    *,
    audience_id: int,
    visible_runbook_ids: Sequence[uuid.UUID] | None,
    start: dt.datetime,
    end: dt.datetime,
    first_day: dt.date,
    end_day: dt.date,
    tz_name: str,
) -> None:
    """(Re)write the rollups of the audience for the days [first_day, end_day), i.e. [start, end) in
    ``tz_name``, from the facts (which must cover them); every audience with ``visible_runbook_ids`` None
    also writes the per-runbook rollup. The caller runs it in a transaction."""
    filters = MetricFilter(
        start=start,
        end=end,
        facts_before=end,
        visible_runbook_ids=None if visible_runbook_ids is None else tuple(visible_runbook_ids),
    )
    params = filters.params() | {
        "audience": audience_id,
        "tz": tz_name,
        "first_day": first_day,
        "end_day": end_day,
        "abandon_after": ABANDON_AFTER,
    }
    everyone = visible_runbook_ids is None
    logs = sql.Composed(
        [
            per_log_ctes(filters),
            sql.SQL(LOG_ROLLUP_INSERT).format(
                counts=sql.SQL(LOG_CELL_COUNTS),
                bucket=bucket_of(DECISION_SECONDS),
                level_columns=sql.SQL(LEVEL_COLUMNS),
                levels=_levels("day, strategy, bucket"),
            ),
        ]
    )
    pairs = sql.SQL(PAIR_ROLLUP_INSERT).format(
        vis=visible_clause("f", filters),
        runbooks=sql.SQL(RUNBOOK_ROLLUP_INSERT if everyone else "").format(
            level_columns=sql.SQL(NO_STRATEGY_LEVEL_COLUMNS),
            runbook_levels=sql.SQL(RUNBOOK_LEVELS),
        ),
        level_columns=sql.SQL(LEVEL_COLUMNS),
        pair_levels=_levels("day, strategy, rank, carried_over"),
        hist_levels=sql.SQL(FUNNEL_HIST_LEVELS),
        hist_columns=sql.SQL(NO_STRATEGY_LEVEL_COLUMNS),
        bucket=bucket_of(sql.SQL("m.seconds")),
        steps=sql.SQL(FUNNEL_STEP_SECONDS.format(a="s.")),
    )
    connection.ensure_connection()
    deletes = [DELETE_AUDIENCE_DAYS.format(table=sql.Identifier(table)) for table in ROLLUP_TABLES]
    with connection.cursor() as cursor:
        for statement in [*deletes, *([DELETE_RUNBOOK_DAYS] if everyone else []), logs, pairs]:
            cursor.execute(statement.as_string(connection.connection), params)


VACUUM_ROLLUPS = sql.SQL(
    "VACUUM (ANALYZE) analytics_daily_logs, analytics_daily_pairs, analytics_daily_histograms, analytics_daily_runbooks"
)
ANALYZE_ROLLUPS = sql.SQL(
    "ANALYZE analytics_daily_logs, analytics_daily_pairs, analytics_daily_histograms, analytics_daily_runbooks"
)


def rollups_analyze() -> None:
    """Fresh planner statistics after a large build (a year at once), so reads use the indexes, and (outside
    a transaction) the visibility map set, so the covering indexes answer without the table."""
    connection.ensure_connection()
    statement = ANALYZE_ROLLUPS if connection.in_atomic_block else VACUUM_ROLLUPS
    with connection.cursor() as cursor:
        cursor.execute(statement.as_string(connection.connection))
