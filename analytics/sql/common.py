"""What every analytics statement shares: the filter, the read path and the CTEs (docs/analytics.md).

Facts every metric shares, so they agree with each other:

- An audit log belongs to the range when ``start <= created_at < end``; filters (source, presentation
  strategy, experiment, variant) apply to the audit log.
- A *presentation* is a ``presented`` event of (audit log, runbook) — written with the audit log, at its
  ``created_at``, for each recommended runbook, with its rank.
- A *click* is the first ``clicked_link`` event of the same (audit log, runbook) at or after the
  presentation and within ``ATTRIBUTION_WINDOW`` (24 h). Clicks come from the events table (not from
  ``user_modifications``): it carries rank and time and is partitioned, so range predicates prune.
- Visibility: ``visible_runbook_ids`` None means every runbook; otherwise presentations, clicks and
  funnel events of other runbooks are ignored. Audit logs themselves are always counted, so a log
  whose every solution is hidden counts as "no recommendation" for that reader.
- Event scans are bounded by ``start <= event_timestamp < end + 24 h`` so only the partitions of the
  range are read.
- Rates with a zero denominator are ``None``.

Statements are built with ``psycopg.sql`` (identifiers) and bound parameters (values), never f-strings.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connections, transaction
from psycopg import sql

from aihelper.core.db_router import analytics_read_alias

ATTRIBUTION_WINDOW = dt.timedelta(hours=24)
ANALYTICS_WORK_MEM = "64MB"

# The dashboard's aggregates sort and hash a few hundred thousand rows; with the default 4 MB they
# spill to disk. ``true``: for the current transaction only.
SET_WORK_MEM = sql.SQL("SELECT set_config('work_mem', %(work_mem)s, true)")


@dataclass(frozen=True)
class RollupSpan:
    """Whole days [start, end) of the range answered from the daily rollups of ``audience_id``."""

    audience_id: int
    start: dt.datetime
    end: dt.datetime
    first_day: dt.date
    end_day: dt.date  # exclusive


@dataclass(frozen=True)
class MetricFilter:
    start: dt.datetime
    end: dt.datetime  # exclusive
    source: str | None = None
    strategy: str | None = None
    experiment: str | None = None
    variant: str | None = None
    visible_runbook_ids: tuple[uuid.UUID, ...] | None = None  # None: every runbook
    # Audit logs created before this are read from the facts tables (analytics_facts_refresh); None: none.
    facts_before: dt.datetime | None = None
    # Days read from the daily rollups (inside the facts part); the facts and live parts skip them.
    rollup: RollupSpan | None = None

    @property
    def uses_facts(self) -> bool:
        return self.facts_before is not None and self.facts_before > self.start

    def params(self) -> dict:
        split = min(max(self.facts_before, self.start), self.end) if self.uses_facts else self.start
        return {
            "start": self.start,
            "end": self.end,
            "facts_end": split,
            "live_start": split,
            "events_end": self.end + ATTRIBUTION_WINDOW,
            "source": self.source,
            "strategy": self.strategy,
            "experiment": self.experiment,
            "variant": self.variant,
            "visible": list(self.visible_runbook_ids or ()),
            "window": ATTRIBUTION_WINDOW,
        } | self._rollup_params()

    def _rollup_params(self) -> dict:
        span = self.rollup
        if span is None:
            return {}
        return {
            "audience": span.audience_id,
            "hole_start": span.start,
            "hole_end": span.end,
            "rollup_first_day": span.first_day,
            "rollup_end_day": span.end_day,
        }


def metric_filter(
    *,
    start: dt.datetime,
    end: dt.datetime,
    visible_runbook_ids: Sequence[uuid.UUID] | None = None,
    facts_before: dt.datetime | None = None,
    rollup: RollupSpan | None = None,
    **filters,
) -> MetricFilter:
    return MetricFilter(
        start=start,
        end=end,
        visible_runbook_ids=None if visible_runbook_ids is None else tuple(visible_runbook_ids),
        facts_before=facts_before,
        rollup=rollup,
        **{key: value or None for key, value in filters.items()},
    )


def ratio(numerator, denominator) -> float | None:
    return None if not denominator else numerator / denominator


def float_or_none(value) -> float | None:
    return None if value is None else float(value)


def run_read(query: sql.Composable, params: dict) -> list[tuple]:
    """Every analytics read goes through here, to the analytics alias (a replica when configured)."""
    alias = analytics_read_alias()
    reader = connections[alias]
    reader.ensure_connection()
    with transaction.atomic(using=alias), reader.cursor() as cursor:
        cursor.execute(SET_WORK_MEM.as_string(reader.connection), {"work_mem": ANALYTICS_WORK_MEM})
        cursor.execute(query.as_string(reader.connection), params)
        return cursor.fetchall()


def visible_clause(alias: str, filters: MetricFilter) -> sql.Composable:
    """`` AND <alias>.runbook_id`` is one the reader may see (nothing when they see every runbook)."""
    if filters.visible_runbook_ids is None:
        return sql.SQL("")
    return sql.SQL(" AND {}.runbook_id = ANY(%(visible)s::uuid[])").format(sql.Identifier(alias))


def filter_condition(alias: str, filters: MetricFilter, *, facts: bool) -> sql.Composable:
    """The range and the audit-log filters, ANDed, on a facts table (``facts``) or on ai_helper_audit_logs."""
    a = sql.Identifier(alias)
    if facts and filters.rollup is not None:
        # Two index ranges around the rolled-up days.
        clauses = [
            sql.SQL(
                "(({a}.created_at >= %(start)s AND {a}.created_at < %(hole_start)s)"
                " OR ({a}.created_at >= %(hole_end)s AND {a}.created_at < %(facts_end)s))"
            ).format(a=a)
        ]
    elif facts:
        clauses = [sql.SQL("{}.created_at >= %(start)s").format(a), sql.SQL("{}.created_at < %(facts_end)s").format(a)]
    if facts:
        columns = {"source": "source", "strategy": "strategy", "experiment": "experiment", "variant": "variant"}
        expressions = {key: sql.SQL("{}.{}").format(a, sql.Identifier(column)) for key, column in columns.items()}
    else:
        clauses = [sql.SQL("{}.created_at >= %(live_start)s").format(a), sql.SQL("{}.created_at < %(end)s").format(a)]
        expressions = {"source": sql.SQL("{}.source").format(a)} | {
            key: sql.SQL("{}.ai_action_details->>{}").format(a, sql.Literal(path))
            for key, path in (
                ("strategy", "presentation_strategy"),
                ("experiment", "experiment"),
                ("variant", "variant"),
            )
        }
    for key in ("source", "strategy", "experiment", "variant"):
        if getattr(filters, key):
            clauses.append(sql.SQL("{} = {}").format(expressions[key], sql.Placeholder(key)))
    return sql.SQL(" AND ").join(clauses)


def rollup_condition(
    alias: str, filters: MetricFilter, *, audience: bool = True, levels: bool = True, coarse_strategy: bool = True
) -> sql.Composable:
    """The rolled-up days of the range, the audience (unless ``audience`` is False) and the audience-log filters.

    Tables with ``levels`` hold every cell twice: ``detailed`` rows per (strategy, source, experiment,
    variant) and coarse rows per strategy only (source, experiment and variant ''), a tenth of the rows;
    a filter on source, experiment or variant reads the detailed rows, anything else the coarse ones. The
    per-runbook rollup and the funnel's step times keep no strategy in their coarse rows (``coarse_strategy``
    False; strategy ''): a strategy filter reads their detailed rows too."""
    a = sql.Identifier(alias)
    clauses = [sql.SQL("{a}.day >= %(rollup_first_day)s AND {a}.day < %(rollup_end_day)s").format(a=a)]
    if audience:
        clauses.append(sql.SQL("{}.audience_id = %(audience)s").format(a))
    if levels:
        detail_keys = ("source", "experiment", "variant", *(() if coarse_strategy else ("strategy",)))
        detailed = any(getattr(filters, key) for key in detail_keys)
        clauses.append(sql.SQL("{}.detailed = {}").format(a, sql.Literal(detailed)))
    for key in ("source", "strategy", "experiment", "variant"):
        if getattr(filters, key):
            clauses.append(sql.SQL("{}.{} = {}").format(a, sql.Identifier(key), sql.Placeholder(key)))
    return sql.SQL(" AND ").join(clauses)


# The log-scale bucket of a duration in seconds (analytics/histograms.py holds the same bounds).
BUCKET_SQL = "CASE WHEN {s} < 1 THEN 0 ELSE 1 + floor(4 * ln({s}) / ln(2))::int END"


def bucket_of(seconds: sql.Composable) -> sql.Composable:
    return sql.SQL(BUCKET_SQL).format(s=seconds)


def logs_cte(filters: MetricFilter) -> sql.Composable:
    """live_logs: audit logs of the range not yet in the facts tables (all of them without facts)."""
    return sql.SQL(
        """live_logs AS (
    SELECT a.id, a.created_at, a.source,
           COALESCE(a.ai_action_details->>'presentation_strategy', '') AS strategy,
           COALESCE(a.ai_action_details->>'experiment', '') AS experiment,
           COALESCE(a.ai_action_details->>'variant', '') AS variant,
           -- ids of the solutions carried over from earlier in the conversation (not retrieved for this turn)
           jsonb_path_query_array(a.ai_action_details, '$.solutions_presented[*] ? (@.carried_over == true).id')
               AS carried
    FROM ai_helper_audit_logs a
    WHERE {where}
)"""
    ).format(where=filter_condition("a", filters, facts=False))


def live_pairs_ctes(filters: MetricFilter) -> sql.Composable:
    """live_logs, live_pairs: one row per (audit log, visible runbook) presentation with its first click."""
    return sql.SQL(
        """{logs},
live_presented AS (
    SELECT e.audit_log_id, e.runbook_id, min(e.rank) AS rank, min(e.event_timestamp) AS presented_at
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(live_start)s AND e.event_timestamp < %(end)s
      AND e.event_type = 'presented' AND e.audit_log_id IS NOT NULL{vis_p}
    GROUP BY e.audit_log_id, e.runbook_id
),
live_clicked AS MATERIALIZED (  -- scanned once, then hashed: a per-presentation index probe costs more
    SELECT e.audit_log_id, e.runbook_id, e.event_timestamp
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(live_start)s AND e.event_timestamp < %(events_end)s
      AND e.event_type = 'clicked_link' AND e.audit_log_id IS NOT NULL{vis_c}
),
live_pairs AS (
    SELECT l.id AS audit_log_id, l.created_at, l.source, l.strategy, l.experiment, l.variant,
           p.runbook_id, p.rank, p.presented_at, min(c.event_timestamp) AS first_click_at,
           l.carried ? p.runbook_id::text AS carried_over
    FROM live_logs l JOIN live_presented p ON p.audit_log_id = l.id
    LEFT JOIN live_clicked c ON c.audit_log_id = p.audit_log_id AND c.runbook_id = p.runbook_id
     AND c.event_timestamp >= p.presented_at AND c.event_timestamp < p.presented_at + %(window)s
    GROUP BY l.id, l.created_at, l.source, l.strategy, l.experiment, l.variant, l.carried, p.runbook_id, p.rank,
             p.presented_at
)"""
    ).format(logs=logs_cte(filters), vis_p=visible_clause("e", filters), vis_c=visible_clause("e", filters))


def pairs_ctes(filters: MetricFilter) -> sql.Composable:
    """WITH ... pairs: live pairs, plus the settled ones from analytics_pair_facts."""
    parts = [
        sql.SQL("WITH "),
        live_pairs_ctes(filters),
        sql.SQL(
            """,
pairs AS (
    SELECT audit_log_id, created_at, strategy, experiment, variant, runbook_id, rank, presented_at, first_click_at,
           carried_over
    FROM live_pairs"""
        ),
    ]
    if filters.uses_facts:
        parts.append(
            sql.SQL(
                """
    UNION ALL
    SELECT f.audit_log_id, f.created_at, f.strategy, f.experiment, f.variant, f.runbook_id, f.rank, f.presented_at,
           f.clicked_at, f.carried_over
    FROM analytics_pair_facts f WHERE {where}{vis}"""
            ).format(where=filter_condition("f", filters, facts=True), vis=visible_clause("f", filters))
        )
    parts.append(sql.SQL("\n)"))
    return sql.Composed(parts)


# The per-log columns from a log's pairs; ``click`` names the pairs' first-click column.
_PER_LOG_AGGREGATES = """count(p.runbook_id) > 0 AS presented,
           min(p.{click}) AS first_click_at,
           (array_agg(p.rank ORDER BY p.{click}, p.rank) FILTER (WHERE p.{click} IS NOT NULL))[1] AS first_click_rank,
           count(p.{click}) AS clicked_runbooks"""


def _per_log_aggregates(click: str) -> sql.Composable:
    return sql.SQL(_PER_LOG_AGGREGATES).format(click=sql.Identifier(click))


def per_log_ctes(filters: MetricFilter) -> sql.Composable:
    """... per_log: one row per audit log in range (presented, first click time and rank, clicks)."""
    restricted_with_facts = filters.uses_facts and filters.visible_runbook_ids is not None
    parts = [
        pairs_ctes(filters),
        hidden_logs_cte(filters) if restricted_with_facts else sql.SQL(""),
        sql.SQL(
            """,
per_log AS (
    SELECT l.id, l.created_at, l.source, l.strategy, l.experiment, l.variant,
           {aggregates}
    FROM live_logs l LEFT JOIN live_pairs p ON p.audit_log_id = l.id
    GROUP BY l.id, l.created_at, l.source, l.strategy, l.experiment, l.variant"""
        ).format(aggregates=_per_log_aggregates("first_click_at")),
    ]
    if filters.uses_facts and filters.visible_runbook_ids is None:
        # Every runbook visible: the per-log columns were computed when the facts were written.
        parts.append(
            sql.SQL(
                """
    UNION ALL
    SELECT g.audit_log_id, g.created_at, g.source, g.strategy, g.experiment, g.variant,
           g.presented > 0, g.first_click_at, g.first_click_rank, g.clicked_runbooks
    FROM analytics_log_facts g WHERE {where}"""
            ).format(where=filter_condition("g", filters, facts=True))
        )
    elif restricted_with_facts:
        # A settled log none of whose presentations is hidden from the reader has exactly its
        # all-runbooks facts; only logs that presented a hidden runbook are re-aggregated from the pair
        # facts of the visible runbooks (a restricted reader typically misses a few runbooks, so this
        # is a small share of the range instead of all of it).
        parts.append(
            sql.SQL(
                """
    UNION ALL
    SELECT g.audit_log_id, g.created_at, g.source, g.strategy, g.experiment, g.variant,
           g.presented > 0, g.first_click_at, g.first_click_rank, g.clicked_runbooks
    FROM analytics_log_facts g WHERE {where}
      AND NOT EXISTS (SELECT 1 FROM hidden_logs h WHERE h.audit_log_id = g.audit_log_id)
    UNION ALL
    SELECT h.audit_log_id, h.created_at, h.source, h.strategy, h.experiment, h.variant,
           {aggregates}
    FROM hidden_logs h
    LEFT JOIN analytics_pair_facts p ON p.audit_log_id = h.audit_log_id
     AND p.created_at = h.created_at{vis}  -- a pair fact carries its log's created_at: an index lookup
    GROUP BY h.audit_log_id, h.created_at, h.source, h.strategy, h.experiment, h.variant"""
            ).format(
                aggregates=_per_log_aggregates("clicked_at"),
                vis=visible_clause("p", filters),
                where=filter_condition("g", filters, facts=True),
            )
        )
    parts.append(sql.SQL("\n)"))
    return sql.Composed(parts)


def hidden_logs_cte(filters: MetricFilter) -> sql.Composable:
    """hidden_logs: settled logs of the range (after filters) that presented a runbook the reader may not see."""
    return sql.SQL(
        """,
hidden_logs AS (
    SELECT DISTINCT f.audit_log_id, f.created_at, f.source, f.strategy, f.experiment, f.variant
    FROM analytics_pair_facts f
    WHERE {where} AND NOT (f.runbook_id = ANY(%(visible)s::uuid[]))
)"""
    ).format(where=filter_condition("f", filters, facts=True))


def live_chain_ctes(filters: MetricFilter, *, with_logs: bool = True) -> sql.Composable:
    """[live_logs,] live_presentations, live_steps, live_step_times, live_chain: the funnel steps of live
    presentations, each the first event of its type at or after the previous step, within 24 h."""
    return sql.SQL(
        """{logs}live_presentations AS (
    SELECT e.audit_log_id, e.runbook_id, min(e.event_timestamp) AS presented_at
    FROM runbook_interaction_events e JOIN live_logs l ON l.id = e.audit_log_id
    WHERE e.event_timestamp >= %(live_start)s AND e.event_timestamp < %(end)s AND e.event_type = 'presented'{vis_p}
    GROUP BY e.audit_log_id, e.runbook_id
),
live_steps AS MATERIALIZED (
    SELECT e.audit_log_id, e.runbook_id, e.event_type, e.event_timestamp
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(live_start)s AND e.event_timestamp < %(events_end)s
      AND e.event_type IN ('clicked_link', 'viewed_detail', 'started_execution', 'succeeded')
      AND e.audit_log_id IS NOT NULL{vis_s}
),
live_step_times AS (
    SELECT p.audit_log_id, p.runbook_id, p.presented_at,
           array_agg(s.event_timestamp) FILTER (WHERE s.event_type = 'clicked_link') AS clicks,
           array_agg(s.event_timestamp) FILTER (WHERE s.event_type = 'viewed_detail') AS views,
           array_agg(s.event_timestamp) FILTER (WHERE s.event_type = 'started_execution') AS starts,
           array_agg(s.event_timestamp) FILTER (WHERE s.event_type = 'succeeded') AS successes
    FROM live_presentations p LEFT JOIN live_steps s
      ON s.audit_log_id = p.audit_log_id AND s.runbook_id = p.runbook_id
     AND s.event_timestamp >= p.presented_at AND s.event_timestamp < p.presented_at + %(window)s
    GROUP BY p.audit_log_id, p.runbook_id, p.presented_at
),
live_chain AS (
    SELECT g.audit_log_id, g.runbook_id, g.presented_at, c.at AS clicked_at, v.at AS viewed_at,
           x.at AS started_at, y.at AS succeeded_at
    FROM live_step_times g
    CROSS JOIN LATERAL (SELECT min(t) AS at FROM unnest(g.clicks) t WHERE t >= g.presented_at) c
    CROSS JOIN LATERAL (SELECT min(t) AS at FROM unnest(g.views) t WHERE t >= c.at) v
    CROSS JOIN LATERAL (SELECT min(t) AS at FROM unnest(g.starts) t WHERE t >= v.at) x
    CROSS JOIN LATERAL (SELECT min(t) AS at FROM unnest(g.successes) t WHERE t >= x.at) y
)"""
    ).format(
        logs=sql.Composed([logs_cte(filters), sql.SQL(",\n")]) if with_logs else sql.SQL(""),
        vis_p=visible_clause("e", filters),
        vis_s=visible_clause("e", filters),
    )
