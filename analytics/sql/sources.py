"""The metrics split by source (chat page, widget, alert, ...) and the alerts' outcomes (docs/analytics.md,
"By source and alert outcomes").

- ``source_summary``: per audit-log source, the counts behind recommendation rate, click-through and
  first-choice accuracy, and the time to decision; the same per-log rows as ``log_summary`` (``per_log``
  and the daily rollups, whose log rows and detailed histogram rows keep the source), so a source's row
  equals the dashboard filtered to that source.
- ``alert_outcomes``: the audit logs of alert presentations (source ``alert``) with their first click and
  their ``alert_resolved`` event (alerts/outcomes.py: the resolution time, the alert's start in the
  metadata; the start is also in the presentation's page context): time from the alert's start to the
  first click and from the click to the resolution. Read
  from the event store by audit log id for every range (the alert presentations are one per user and
  alert, few next to the answers), never from the rollups: exact, but an archived month's events are gone
  (docs/analytics.md, "Archive").
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from analytics.histograms import percentile
from analytics.sql.common import (
    MetricFilter,
    bucket_of,
    float_or_none,
    per_log_ctes,
    ratio,
    rollup_condition,
    run_read,
    visible_clause,
)
from analytics.sql.metrics import DECISION_SECONDS

ALERT_SOURCE = "alert"
# A stored start is cast only when it looks like an ISO 8601 time: a malformed one is "unknown", never a 500.
ISO_TIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"


@dataclass(frozen=True)
class SourceRow:
    """One audit-log source: its answers (audit logs) and their rates; time to decision in seconds."""

    source: str
    audit_logs: int
    recommended: int
    clicked: int
    first_click_rank1: int
    recommendation_rate: float | None
    click_through_rate: float | None
    first_choice_accuracy: float | None
    decided: int
    decision_median_seconds: float | None
    decision_p90_seconds: float | None


SOURCE_COUNTS = """
SELECT 'counts', source, NULL::int, sum(logs)::bigint, sum(recommended)::bigint, sum(clicked)::bigint,
       sum(rank1)::bigint, NULL::float8, NULL::float8
FROM (
    SELECT source, count(*) AS logs, count(*) FILTER (WHERE presented) AS recommended,
           count(*) FILTER (WHERE presented AND first_click_at IS NOT NULL) AS clicked,
           count(*) FILTER (WHERE first_click_rank = 1) AS rank1
    FROM per_log GROUP BY source{rollup}
) cells
GROUP BY source
UNION ALL"""

# Rolled-up days: the log rows are per source already (no coarse level).
SOURCE_ROLLUP_COUNTS = """
    UNION ALL
    SELECT r.source, r.logs, r.recommended, r.clicked, r.rank1 FROM analytics_daily_logs r WHERE {where}"""

SOURCE_DECISIONS = """
SELECT 'decisions', source, NULL::int, count(*), NULL, NULL, NULL,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY {seconds}),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY {seconds})
FROM per_log WHERE first_click_at IS NOT NULL GROUP BY source"""

# With rollups: time to decision as log-scale bucket counts per source (the detailed histogram rows).
SOURCE_BUCKETS = """
SELECT 'buckets', source, bucket::int, sum(n)::bigint, NULL, NULL, NULL, NULL::float8, NULL::float8
FROM (
    SELECT source, {bucket} AS bucket, count(*) AS n FROM per_log WHERE first_click_at IS NOT NULL GROUP BY 1, 2
    UNION ALL
    SELECT h.source, h.bucket, h.count FROM analytics_daily_histograms h WHERE {where} AND h.detailed
       AND h.measure = 0
) b
GROUP BY source, bucket"""


def source_summary_statement(filters: MetricFilter) -> sql.Composable:
    if filters.rollup is None:
        return sql.Composed(
            [
                per_log_ctes(filters),
                sql.SQL(SOURCE_COUNTS).format(rollup=sql.SQL("")),
                sql.SQL(SOURCE_DECISIONS).format(seconds=DECISION_SECONDS),
            ]
        )
    return sql.Composed(
        [
            per_log_ctes(filters),
            sql.SQL(SOURCE_COUNTS).format(
                rollup=sql.SQL(SOURCE_ROLLUP_COUNTS).format(where=rollup_condition("r", filters, levels=False))
            ),
            sql.SQL(SOURCE_BUCKETS).format(
                bucket=bucket_of(DECISION_SECONDS), where=rollup_condition("h", filters, levels=False)
            ),
        ]
    )


def source_summary(filters: MetricFilter) -> list[SourceRow]:
    """Per audit-log source of ``filters``, most answers first (then by name); only sources with answers."""
    counts: dict[str, tuple[int, int, int, int]] = {}
    decisions: dict[str, tuple[int, float | None, float | None]] = {}
    buckets: dict[str, dict[int, int]] = {}
    for part, source, bucket, n, recommended, clicked, rank1, median, p90 in run_read(
        source_summary_statement(filters), filters.params()
    ):
        if part == "counts":
            counts[source] = (n, recommended, clicked, rank1)
        elif part == "decisions":
            decisions[source] = (n, float_or_none(median), float_or_none(p90))
        else:
            buckets.setdefault(source, {})[bucket] = n
    for source, histogram in buckets.items():
        decisions[source] = (sum(histogram.values()), percentile(histogram, 0.5), percentile(histogram, 0.9))
    rows = []
    for source, (logs, recommended, clicked, rank1) in counts.items():
        decided, median, p90 = decisions.get(source, (0, None, None))
        rows.append(
            SourceRow(
                source=source,
                audit_logs=logs,
                recommended=recommended,
                clicked=clicked,
                first_click_rank1=rank1,
                recommendation_rate=ratio(recommended, logs),
                click_through_rate=ratio(clicked, recommended),
                first_choice_accuracy=ratio(rank1, clicked),
                decided=decided,
                decision_median_seconds=median,
                decision_p90_seconds=p90,
            )
        )
    return sorted(rows, key=lambda row: (-row.audit_logs, row.source))


@dataclass(frozen=True)
class AlertOutcomes:
    """The alert presentations (audit logs of source ``alert``) of the range and how they ended.

    ``start_to_click``: the alert's start (``starts_at``) to the presentation's first click, for clicked
    presentations whose start is known: the page context the alerts page records (``alert_starts_at``), else
    the ``alert_resolved`` event's metadata.
    ``click_to_resolved``: the first click to the resolution, when the alert resolved after the click."""

    presentations: int
    recommended: int
    clicked: int
    resolved: int
    start_to_click_count: int
    start_to_click_median_seconds: float | None
    start_to_click_p90_seconds: float | None
    click_to_resolved_count: int
    click_to_resolved_median_seconds: float | None
    click_to_resolved_p90_seconds: float | None


ALERT_OUTCOMES = """
WITH alert_logs AS (
    -- the alerts page records the alert's start in the presentation's page context (alerts/presenting.py)
    SELECT a.id, a.created_at,
           CASE WHEN a.ai_action_details->'page_context'->>'alert_starts_at' ~ %(iso_time)s
                THEN (a.ai_action_details->'page_context'->>'alert_starts_at')::timestamptz END AS starts_at
    FROM ai_helper_audit_logs a
    WHERE a.created_at >= %(start)s AND a.created_at < %(end)s AND a.source = %(alert_source)s{filters}
),
presented AS (
    SELECT e.audit_log_id, e.runbook_id, min(e.event_timestamp) AS presented_at
    FROM alert_logs l JOIN runbook_interaction_events e ON e.audit_log_id = l.id
    WHERE e.event_timestamp >= %(start)s AND e.event_timestamp < %(end)s AND e.event_type = 'presented'{vis_p}
    GROUP BY e.audit_log_id, e.runbook_id
),
clicked AS (
    SELECT p.audit_log_id, min(e.event_timestamp) AS first_click_at
    FROM presented p JOIN runbook_interaction_events e ON e.audit_log_id = p.audit_log_id
     AND e.runbook_id = p.runbook_id
    WHERE e.event_timestamp >= %(start)s AND e.event_timestamp < %(events_end)s AND e.event_type = 'clicked_link'
      AND e.event_timestamp >= p.presented_at AND e.event_timestamp < p.presented_at + %(window)s
    GROUP BY p.audit_log_id
),
resolved AS (
    -- one per presentation (alerts/outcomes.py: a deterministic event id); any runbook: it is the alert's
    SELECT e.audit_log_id, min(e.event_timestamp) AS resolved_at,
           min((e.metadata->>'starts_at')::timestamptz) AS starts_at
    FROM alert_logs l JOIN runbook_interaction_events e ON e.audit_log_id = l.id
    WHERE e.event_timestamp >= %(start)s AND e.event_type = 'alert_resolved'
    GROUP BY e.audit_log_id
),
outcomes AS (
    SELECT l.id, EXISTS (SELECT 1 FROM presented p WHERE p.audit_log_id = l.id) AS recommended,
           c.first_click_at, r.resolved_at,
           extract(epoch FROM c.first_click_at - COALESCE(l.starts_at, r.starts_at)) AS start_to_click,
           CASE WHEN r.resolved_at >= c.first_click_at
                THEN extract(epoch FROM r.resolved_at - c.first_click_at) END AS click_to_resolved
    FROM alert_logs l LEFT JOIN clicked c ON c.audit_log_id = l.id LEFT JOIN resolved r ON r.audit_log_id = l.id
)
SELECT count(*), count(*) FILTER (WHERE recommended), count(first_click_at), count(resolved_at),
       count(start_to_click),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY start_to_click),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY start_to_click),
       count(click_to_resolved),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY click_to_resolved),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY click_to_resolved)
FROM outcomes"""


def _log_filters(filters: MetricFilter) -> sql.Composable:
    """The dashboard's strategy / experiment / variant filters on the audit log (its source is ``alert``)."""
    paths = {"strategy": "presentation_strategy", "experiment": "experiment", "variant": "variant"}
    return sql.Composed(
        [
            sql.SQL(" AND a.ai_action_details->>{} = {}").format(sql.Literal(path), sql.Placeholder(key))
            for key, path in paths.items()
            if getattr(filters, key)
        ]
    )


def alert_outcomes_statement(filters: MetricFilter) -> sql.Composable:
    return sql.SQL(ALERT_OUTCOMES).format(filters=_log_filters(filters), vis_p=visible_clause("e", filters))


def alert_outcomes(filters: MetricFilter) -> AlertOutcomes:
    """The alert presentations created in [start, end) and their outcomes; zeros when the source filter is
    another source. Clicks count only on runbooks the reader may see (as everywhere); the resolution is
    the alert's and counts whichever runbook its event is filed under."""
    if filters.source not in (None, ALERT_SOURCE):
        return AlertOutcomes(0, 0, 0, 0, 0, None, None, 0, None, None)
    params = {**filters.params(), "alert_source": ALERT_SOURCE, "iso_time": ISO_TIME}
    row = run_read(alert_outcomes_statement(filters), params)[0]
    logs, recommended, clicked, resolved, to_click, click_median, click_p90, to_resolved, res_median, res_p90 = row
    return AlertOutcomes(
        presentations=logs,
        recommended=recommended,
        clicked=clicked,
        resolved=resolved,
        start_to_click_count=to_click,
        start_to_click_median_seconds=float_or_none(click_median),
        start_to_click_p90_seconds=float_or_none(click_p90),
        click_to_resolved_count=to_resolved,
        click_to_resolved_median_seconds=float_or_none(res_median),
        click_to_resolved_p90_seconds=float_or_none(res_p90),
    )
