"""Named SQL metrics (docs/analytics.md). The only raw SQL of the app: psycopg.sql + bound parameters.

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
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, connections, transaction
from psycopg import sql

from aihelper.core.db_router import analytics_read_alias

ATTRIBUTION_WINDOW = dt.timedelta(hours=24)
ABANDON_AFTER = dt.timedelta(minutes=30)
ANALYTICS_WORK_MEM = "64MB"
FUNNEL_STEPS = ("presented", "clicked_link", "viewed_detail", "started_execution", "succeeded")


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
        }


def ratio(numerator, denominator) -> float | None:
    return None if not denominator else numerator / denominator


def _run(query: sql.Composable, params: dict) -> list[tuple]:
    """Every metric read goes through here, to the analytics alias (a replica when configured)."""
    alias = analytics_read_alias()
    reader = connections[alias]
    reader.ensure_connection()
    # The dashboard's aggregates sort and hash a few hundred thousand rows; with the default 4 MB they
    # spill to disk. Raised for this transaction only.
    with transaction.atomic(using=alias), reader.cursor() as cursor:
        cursor.execute("SELECT set_config('work_mem', %s, true)", [ANALYTICS_WORK_MEM])
        cursor.execute(query.as_string(reader.connection), params)
        return cursor.fetchall()


def _visible(alias: str, filters: MetricFilter) -> sql.Composable:
    if filters.visible_runbook_ids is None:
        return sql.SQL("")
    return sql.SQL(" AND {}.runbook_id = ANY(%(visible)s::uuid[])").format(sql.Identifier(alias))


def _filter_clauses(alias: str, filters: MetricFilter, *, facts: bool) -> list[sql.Composable]:
    a = sql.Identifier(alias)
    if facts:
        clauses = [sql.SQL("{}.created_at >= %(start)s").format(a), sql.SQL("{}.created_at < %(facts_end)s").format(a)]
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
    return clauses


def _logs_cte(filters: MetricFilter) -> sql.Composable:
    """live_logs: audit logs of the range not yet in the facts tables (all of them without facts)."""
    return sql.SQL(
        """live_logs AS (
    SELECT a.id, a.created_at, a.source,
           COALESCE(a.ai_action_details->>'presentation_strategy', '') AS strategy,
           COALESCE(a.ai_action_details->>'experiment', '') AS experiment,
           COALESCE(a.ai_action_details->>'variant', '') AS variant
    FROM ai_helper_audit_logs a
    WHERE {where}
)"""
    ).format(where=sql.SQL(" AND ").join(_filter_clauses("a", filters, facts=False)))


def _live_pairs_ctes(filters: MetricFilter) -> sql.Composable:
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
live_clicked AS (
    SELECT e.audit_log_id, e.runbook_id, e.event_timestamp
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(live_start)s AND e.event_timestamp < %(events_end)s
      AND e.event_type = 'clicked_link' AND e.audit_log_id IS NOT NULL{vis_c}
),
live_pairs AS (
    SELECT l.id AS audit_log_id, l.created_at, l.source, l.strategy, l.experiment, l.variant,
           p.runbook_id, p.rank, p.presented_at, min(c.event_timestamp) AS first_click_at
    FROM live_logs l JOIN live_presented p ON p.audit_log_id = l.id
    LEFT JOIN live_clicked c ON c.audit_log_id = p.audit_log_id AND c.runbook_id = p.runbook_id
     AND c.event_timestamp >= p.presented_at AND c.event_timestamp < p.presented_at + %(window)s
    GROUP BY l.id, l.created_at, l.source, l.strategy, l.experiment, l.variant, p.runbook_id, p.rank, p.presented_at
)"""
    ).format(logs=_logs_cte(filters), vis_p=_visible("e", filters), vis_c=_visible("e", filters))


def _pairs_ctes(filters: MetricFilter) -> sql.Composable:
    """WITH ... pairs: live pairs, plus the settled ones from analytics_pair_facts."""
    parts = [
        sql.SQL("WITH "),
        _live_pairs_ctes(filters),
        sql.SQL(
            """,
pairs AS (
    SELECT audit_log_id, created_at, strategy, experiment, variant, runbook_id, rank, presented_at, first_click_at
    FROM live_pairs"""
        ),
    ]
    if filters.uses_facts:
        parts.append(
            sql.SQL(
                """
    UNION ALL
    SELECT f.audit_log_id, f.created_at, f.strategy, f.experiment, f.variant, f.runbook_id, f.rank, f.presented_at,
           f.clicked_at
    FROM analytics_pair_facts f WHERE {where}{vis}"""
            ).format(where=sql.SQL(" AND ").join(_filter_clauses("f", filters, facts=True)), vis=_visible("f", filters))
        )
    parts.append(sql.SQL("\n)"))
    return sql.Composed(parts)


_PER_LOG_AGGREGATES = """count(p.runbook_id) > 0 AS presented,
           min(p.{click}) AS first_click_at,
           (array_agg(p.rank ORDER BY p.{click}, p.rank) FILTER (WHERE p.{click} IS NOT NULL))[1] AS first_click_rank,
           count(p.{click}) AS clicked_runbooks"""


def _per_log_ctes(filters: MetricFilter) -> sql.Composable:
    """... per_log: one row per audit log in range (presented, first click time and rank, clicks)."""
    parts = [
        _pairs_ctes(filters),
        _hidden_logs_cte(filters) if filters.uses_facts and filters.visible_runbook_ids is not None else sql.SQL(""),
        sql.SQL(
            """,
per_log AS (
    SELECT l.id, l.created_at, l.strategy, l.experiment, l.variant,
           {aggregates}
    FROM live_logs l LEFT JOIN live_pairs p ON p.audit_log_id = l.id
    GROUP BY l.id, l.created_at, l.strategy, l.experiment, l.variant"""
        ).format(aggregates=sql.SQL(_PER_LOG_AGGREGATES.format(click="first_click_at"))),
    ]
    if filters.uses_facts and filters.visible_runbook_ids is None:
        # Every runbook visible: the per-log columns were computed when the facts were written.
        parts.append(
            sql.SQL(
                """
    UNION ALL
    SELECT g.audit_log_id, g.created_at, g.strategy, g.experiment, g.variant,
           g.presented > 0, g.first_click_at, g.first_click_rank, g.clicked_runbooks
    FROM analytics_log_facts g WHERE {where}"""
            ).format(where=sql.SQL(" AND ").join(_filter_clauses("g", filters, facts=True)))
        )
    elif filters.uses_facts:
        # A settled log none of whose presentations is hidden from the reader has exactly its
        # all-runbooks facts; only logs that presented a hidden runbook are re-aggregated from the pair
        # facts of the visible runbooks (a restricted reader typically misses a few runbooks, so this
        # is a small share of the range instead of all of it).
        parts.append(
            sql.SQL(
                """
    UNION ALL
    SELECT g.audit_log_id, g.created_at, g.strategy, g.experiment, g.variant,
           g.presented > 0, g.first_click_at, g.first_click_rank, g.clicked_runbooks
    FROM analytics_log_facts g WHERE {where}
      AND NOT EXISTS (SELECT 1 FROM hidden_logs h WHERE h.audit_log_id = g.audit_log_id)
    UNION ALL
    SELECT h.audit_log_id, h.created_at, h.strategy, h.experiment, h.variant,
           {aggregates}
    FROM hidden_logs h
    LEFT JOIN analytics_pair_facts p ON p.audit_log_id = h.audit_log_id
     AND p.created_at >= %(start)s AND p.created_at < %(facts_end)s{vis}
    GROUP BY h.audit_log_id, h.created_at, h.strategy, h.experiment, h.variant"""
            ).format(
                aggregates=sql.SQL(_PER_LOG_AGGREGATES.format(click="clicked_at")),
                vis=_visible("p", filters),
                where=sql.SQL(" AND ").join(_filter_clauses("g", filters, facts=True)),
            )
        )
    parts.append(sql.SQL("\n)"))
    return sql.Composed(parts)


def _hidden_logs_cte(filters: MetricFilter) -> sql.Composable:
    """hidden_logs: settled logs of the range (after filters) that presented a runbook the reader may not see."""
    return sql.SQL(
        """,
hidden_logs AS (
    SELECT DISTINCT f.audit_log_id, f.created_at, f.strategy, f.experiment, f.variant FROM analytics_pair_facts f
    WHERE {where} AND NOT (f.runbook_id = ANY(%(visible)s::uuid[]))
)"""
    ).format(where=sql.SQL(" AND ").join(_filter_clauses("f", filters, facts=True)))


# --- Rates over audit logs --------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    audit_logs: int
    recommended: int  # audit logs with >= 1 solution presented
    clicked: int  # recommended audit logs with >= 1 click
    first_click_rank1: int
    multi_clicked: int  # audit logs with >= 2 distinct clicked solutions
    reciprocal_rank_sum: float
    recommendation_rate: float | None
    click_through_rate: float | None
    first_choice_accuracy: float | None
    mean_reciprocal_rank: float | None
    multi_click_rate: float | None

    @classmethod
    def from_counts(cls, logs: int, recommended: int, clicked: int, rank1: int, multi: int, rr_sum: float) -> Rates:
        """The five ratios from their counts (None for a zero denominator)."""
        return cls(
            audit_logs=logs,
            recommended=recommended,
            clicked=clicked,
            first_click_rank1=rank1,
            multi_clicked=multi,
            reciprocal_rank_sum=rr_sum,
            recommendation_rate=ratio(recommended, logs),
            click_through_rate=ratio(clicked, recommended),
            first_choice_accuracy=ratio(rank1, clicked),
            mean_reciprocal_rank=ratio(rr_sum, clicked),
            multi_click_rate=ratio(multi, clicked),
        )


def rates(filters: MetricFilter) -> Rates:
    """recommendation_rate, click_through_rate, first_choice_accuracy, mean_reciprocal_rank, multi_click_rate."""
    query = sql.Composed(
        [
            _per_log_ctes(filters),
            sql.SQL(
                """
SELECT count(*),
       count(*) FILTER (WHERE presented),
       count(*) FILTER (WHERE presented AND first_click_at IS NOT NULL),
       count(*) FILTER (WHERE first_click_rank = 1),
       count(*) FILTER (WHERE clicked_runbooks >= 2),
       COALESCE(sum(1.0 / first_click_rank), 0)
FROM per_log"""
            ),
        ]
    )
    logs, recommended, clicked, rank1, multi, rr_sum = _run(query, filters.params())[0]
    rr_sum = float(rr_sum)
    return Rates.from_counts(logs, recommended, clicked, rank1, multi, rr_sum)


@dataclass(frozen=True)
class AbandonRate:
    eligible: int  # recommended audit logs at least 30 minutes old
    abandoned: int  # ... without a click within 30 minutes
    abandon_rate: float | None


def abandon_rate(filters: MetricFilter, *, now: dt.datetime) -> AbandonRate:
    query = sql.Composed(
        [
            _per_log_ctes(filters),
            sql.SQL(
                """
SELECT count(*),
       count(*) FILTER (WHERE first_click_at IS NULL OR first_click_at >= created_at + %(abandon_after)s)
FROM per_log
WHERE presented AND created_at <= %(now)s - %(abandon_after)s"""
            ),
        ]
    )
    eligible, abandoned = _run(query, {**filters.params(), "now": now, "abandon_after": ABANDON_AFTER})[0]
    return AbandonRate(eligible=eligible, abandoned=abandoned, abandon_rate=ratio(abandoned, eligible))


# --- Time to decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionTime:
    strategy: str  # "" = overall
    clicked: int
    median_seconds: float | None
    p90_seconds: float | None


def time_to_decision(filters: MetricFilter) -> list[DecisionTime]:
    """Seconds from the audit log's created_at to its first click: overall (strategy "") then per strategy."""
    query = sql.Composed(
        [
            _per_log_ctes(filters),
            sql.SQL(
                """
SELECT COALESCE(strategy, ''), count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_click_at - created_at)),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM first_click_at - created_at)),
       GROUPING(strategy)
FROM per_log
WHERE first_click_at IS NOT NULL
GROUP BY GROUPING SETS ((), (strategy))
ORDER BY GROUPING(strategy) DESC, strategy"""
            ),
        ]
    )
    rows = _run(query, filters.params())
    result = [
        DecisionTime(
            strategy="" if grouping else strategy,
            clicked=count,
            median_seconds=None if median is None else float(median),
            p90_seconds=None if p90 is None else float(p90),
        )
        for strategy, count, median, p90, grouping in rows
    ]
    if not result or result[0].strategy != "":
        result.insert(0, DecisionTime(strategy="", clicked=0, median_seconds=None, p90_seconds=None))
    return result


# --- Per runbook, per strategy, per rank, per variant -------------------------------------------


@dataclass(frozen=True)
class RunbookRow:
    runbook_id: uuid.UUID
    slug: str
    name: str
    impressions: int
    clicks: int
    impression_ctr: float | None
    mean_click_rank: float | None


def top_runbooks(filters: MetricFilter, *, limit: int = 20) -> list[RunbookRow]:
    """Per visible runbook: impressions (times presented), clicks (presentations clicked), CTR, mean click rank."""
    query = sql.Composed(
        [
            _pairs_ctes(filters),
            sql.SQL(
                """
SELECT r.id, r.slug, r.name, t.impressions, t.clicks, t.mean_click_rank
FROM (
    SELECT runbook_id, count(*) AS impressions, count(first_click_at) AS clicks,
           avg(rank) FILTER (WHERE first_click_at IS NOT NULL) AS mean_click_rank
    FROM pairs GROUP BY runbook_id
) t JOIN runbooks r ON r.id = t.runbook_id
ORDER BY t.impressions DESC, t.clicks DESC, r.slug
LIMIT %(limit)s"""
            ),
        ]
    )
    return [
        RunbookRow(
            runbook_id=runbook_id,
            slug=slug,
            name=name,
            impressions=impressions,
            clicks=clicks,
            impression_ctr=ratio(clicks, impressions),
            mean_click_rank=None if mean_rank is None else float(mean_rank),
        )
        for runbook_id, slug, name, impressions, clicks, mean_rank in _run(query, {**filters.params(), "limit": limit})
    ]


@dataclass(frozen=True)
class StrategyRow:
    strategy: str
    audit_logs: int
    recommended: int
    clicked: int
    click_through_rate: float | None


def strategy_distribution(filters: MetricFilter) -> list[StrategyRow]:
    query = sql.Composed(
        [
            _per_log_ctes(filters),
            sql.SQL(
                """
SELECT strategy, count(*), count(*) FILTER (WHERE presented),
       count(*) FILTER (WHERE presented AND first_click_at IS NOT NULL)
FROM per_log GROUP BY strategy ORDER BY count(*) DESC, strategy"""
            ),
        ]
    )
    return [
        StrategyRow(strategy, logs, recommended, clicked, ratio(clicked, recommended))
        for strategy, logs, recommended, clicked in _run(query, filters.params())
    ]


@dataclass(frozen=True)
class RankRow:
    rank: int
    impressions: int
    clicks: int
    impression_ctr: float | None


def click_rank_histogram(filters: MetricFilter) -> list[RankRow]:
    """Per presented rank: presentations and clicked presentations."""
    query = sql.Composed(
        [
            _pairs_ctes(filters),
            sql.SQL("\nSELECT rank, count(*), count(first_click_at) FROM pairs GROUP BY rank ORDER BY rank"),
        ]
    )
    return [
        RankRow(rank, impressions, clicks, ratio(clicks, impressions))
        for rank, impressions, clicks in _run(query, filters.params())
    ]


@dataclass(frozen=True)
class VariantCounts:
    experiment: str
    variant: str
    audit_logs: int
    recommended: int
    clicked: int
    first_click_rank1: int


def experiment_variant_counts(filters: MetricFilter) -> list[VariantCounts]:
    """Per (experiment, variant) of audit logs that carry one: the counts behind CTR and first-choice accuracy."""
    query = sql.Composed(
        [
            _per_log_ctes(filters),
            sql.SQL(
                """
SELECT experiment, variant, count(*), count(*) FILTER (WHERE presented),
       count(*) FILTER (WHERE presented AND first_click_at IS NOT NULL),
       count(*) FILTER (WHERE first_click_rank = 1)
FROM per_log WHERE experiment <> ''
GROUP BY experiment, variant ORDER BY experiment, variant"""
            ),
        ]
    )
    return [VariantCounts(*row) for row in _run(query, filters.params())]


# --- Funnel -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    step: str
    count: int
    step_conversion: float | None  # from the previous step
    overall_conversion: float | None  # from presented
    median_seconds_from_previous: float | None


def _live_chain_ctes(filters: MetricFilter, *, with_logs: bool = True) -> sql.Composable:
    """[live_logs,] live_presented2, steps, grouped, live_chain: the funnel steps of live presentations."""
    return sql.SQL(
        """{logs}live_presented2 AS (
    SELECT e.audit_log_id, e.runbook_id, min(e.event_timestamp) AS presented_at
    FROM runbook_interaction_events e JOIN live_logs l ON l.id = e.audit_log_id
    WHERE e.event_timestamp >= %(live_start)s AND e.event_timestamp < %(end)s AND e.event_type = 'presented'{vis_p}
    GROUP BY e.audit_log_id, e.runbook_id
),
steps AS (
    SELECT e.audit_log_id, e.runbook_id, e.event_type, e.event_timestamp
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(live_start)s AND e.event_timestamp < %(events_end)s
      AND e.event_type IN ('clicked_link', 'viewed_detail', 'started_execution', 'succeeded')
      AND e.audit_log_id IS NOT NULL{vis_s}
),
grouped AS (
    SELECT p.audit_log_id, p.runbook_id, p.presented_at,
           array_agg(s.event_timestamp) FILTER (WHERE s.event_type = 'clicked_link') AS clicks,
           array_agg(s.event_timestamp) FILTER (WHERE s.event_type = 'viewed_detail') AS views,
           array_agg(s.event_timestamp) FILTER (WHERE s.event_type = 'started_execution') AS starts,
           array_agg(s.event_timestamp) FILTER (WHERE s.event_type = 'succeeded') AS successes
    FROM live_presented2 p LEFT JOIN steps s
      ON s.audit_log_id = p.audit_log_id AND s.runbook_id = p.runbook_id
     AND s.event_timestamp >= p.presented_at AND s.event_timestamp < p.presented_at + %(window)s
    GROUP BY p.audit_log_id, p.runbook_id, p.presented_at
),
live_chain AS (
    SELECT g.audit_log_id, g.runbook_id, g.presented_at, c.at AS clicked_at, v.at AS viewed_at,
           x.at AS started_at, y.at AS succeeded_at
    FROM grouped g
    CROSS JOIN LATERAL (SELECT min(t) AS at FROM unnest(g.clicks) t WHERE t >= g.presented_at) c
    CROSS JOIN LATERAL (SELECT min(t) AS at FROM unnest(g.views) t WHERE t >= c.at) v
    CROSS JOIN LATERAL (SELECT min(t) AS at FROM unnest(g.starts) t WHERE t >= v.at) x
    CROSS JOIN LATERAL (SELECT min(t) AS at FROM unnest(g.successes) t WHERE t >= x.at) y
)"""
    ).format(
        logs=sql.Composed([_logs_cte(filters), sql.SQL(",\n")]) if with_logs else sql.SQL(""),
        vis_p=_visible("e", filters),
        vis_s=_visible("e", filters),
    )


def funnel(filters: MetricFilter) -> list[FunnelStep]:
    """presented -> clicked_link -> viewed_detail -> started_execution -> succeeded per (audit log, runbook).

    Each step is the first event of its type at or after the previous step and within 24 h of the
    presentation; events of a step that come before the previous step do not count.
    """
    chain = [
        sql.SQL("WITH "),
        _live_chain_ctes(filters),
        sql.SQL(
            ",\nchain AS (\n    SELECT presented_at, clicked_at, viewed_at, started_at, succeeded_at FROM live_chain"
        ),
    ]
    if filters.uses_facts:
        chain.append(
            sql.SQL(
                """
    UNION ALL
    SELECT f.presented_at, f.clicked_at, f.viewed_at, f.started_at, f.succeeded_at
    FROM analytics_pair_facts f WHERE {where}{vis}"""
            ).format(where=sql.SQL(" AND ").join(_filter_clauses("f", filters, facts=True)), vis=_visible("f", filters))
        )
    query = sql.Composed(
        [
            *chain,
            sql.SQL(
                """
)
SELECT count(*), count(clicked_at), count(viewed_at), count(started_at), count(succeeded_at),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM clicked_at - presented_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM viewed_at - clicked_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - viewed_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM succeeded_at - started_at))
FROM chain"""
            ),
        ]
    )
    row = _run(query, filters.params())[0]
    counts, medians = row[:5], (None, *row[5:])
    steps = []
    for index, name in enumerate(FUNNEL_STEPS):
        steps.append(
            FunnelStep(
                step=name,
                count=counts[index],
                step_conversion=None if index == 0 else ratio(counts[index], counts[index - 1]),
                overall_conversion=None if index == 0 else ratio(counts[index], counts[0]),
                median_seconds_from_previous=None if medians[index] is None else float(medians[index]),
            )
        )
    return steps


# --- Rollups: facts of settled audit logs ---------------------------------------------------------


def facts_rebuild(*, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """(Re)write the facts of audit logs created in [start, end), all runbooks visible, in one statement
    set; the caller runs it in a transaction. Only call for settled logs (end <= now - 24 h), whose
    clicks and funnel steps can no longer change. Returns (log facts, pair facts) written."""
    filters = MetricFilter(start=start, end=end)
    params = filters.params()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM analytics_pair_facts WHERE created_at >= %(start)s AND created_at < %(end)s", params
        )
        cursor.execute("DELETE FROM analytics_log_facts WHERE created_at >= %(start)s AND created_at < %(end)s", params)
        logs = sql.Composed(
            [
                sql.SQL(
                    "INSERT INTO analytics_log_facts (audit_log_id, created_at, source, strategy, experiment, variant,"
                    " presented, first_click_at, first_click_rank, clicked_runbooks) "
                ),
                sql.SQL("WITH "),
                _live_pairs_ctes(filters),
                sql.SQL(
                    """
SELECT l.id, l.created_at, l.source, l.strategy, l.experiment, l.variant,
       count(p.runbook_id), min(p.first_click_at),
       (array_agg(p.rank ORDER BY p.first_click_at, p.rank) FILTER (WHERE p.first_click_at IS NOT NULL))[1],
       count(p.first_click_at)
FROM live_logs l LEFT JOIN live_pairs p ON p.audit_log_id = l.id
GROUP BY l.id, l.created_at, l.source, l.strategy, l.experiment, l.variant"""
                ),
            ]
        )
        cursor.execute(logs.as_string(connection.connection), params)
        log_rows = cursor.rowcount
        pairs = sql.Composed(
            [
                sql.SQL(
                    "INSERT INTO analytics_pair_facts (audit_log_id, runbook_id, created_at, source, strategy,"
                    " experiment, variant, rank, presented_at, clicked_at, viewed_at, started_at, succeeded_at) "
                ),
                sql.SQL("WITH "),
                _live_pairs_ctes(filters),
                sql.SQL(",\n"),
                _live_chain_ctes(filters, with_logs=False),
                sql.SQL(
                    """
SELECT p.audit_log_id, p.runbook_id, p.created_at, p.source, p.strategy, p.experiment, p.variant, p.rank,
       p.presented_at, p.first_click_at, c.viewed_at, c.started_at, c.succeeded_at
FROM live_pairs p JOIN live_chain c ON c.audit_log_id = p.audit_log_id AND c.runbook_id = p.runbook_id"""
                ),
            ]
        )
        cursor.execute(pairs.as_string(connection.connection), params)
        return log_rows, cursor.rowcount


# --- Daily trend --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayRow:
    day: dt.date
    queries: int
    recommendations: int
    clicks: int  # recommended audit logs with >= 1 click
    click_through_rate: float | None


def daily_trend(filters: MetricFilter, *, tz_name: str | None = None) -> list[DayRow]:
    """Per calendar day in settings.TIME_ZONE, every day of the range, days without data as zeros."""
    tz_name = tz_name or settings.TIME_ZONE
    zone = ZoneInfo(tz_name)
    first_day = filters.start.astimezone(zone).date()
    last_day = (filters.end - dt.timedelta(microseconds=1)).astimezone(zone).date()
    query = sql.Composed(
        [
            _per_log_ctes(filters),
            sql.SQL(
                """,
per_day AS (
    SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS queries,
           count(*) FILTER (WHERE presented) AS recommendations,
           count(*) FILTER (WHERE presented AND first_click_at IS NOT NULL) AS clicks
    FROM per_log GROUP BY 1
)
SELECT d.day::date, COALESCE(p.queries, 0), COALESCE(p.recommendations, 0), COALESCE(p.clicks, 0)
FROM generate_series(%(first_day)s::date, %(last_day)s::date, interval '1 day') AS d(day)
LEFT JOIN per_day p ON p.day = d.day::date
ORDER BY d.day"""
            ),
        ]
    )
    params = {**filters.params(), "tz": tz_name, "first_day": first_day, "last_day": last_day}
    return [
        DayRow(day, queries, recommendations, clicks, ratio(clicks, recommendations))
        for day, queries, recommendations, clicks in _run(query, params)
    ]


# --- The dashboard's per-log and per-presentation metrics in one pass each ----------------------


@dataclass(frozen=True)
class LogSummary:
    """rates, abandon_rate, time_to_decision, strategy_distribution, experiment_variant_counts and
    daily_trend from one scan of the per-log facts: the same rows the six functions give one by one."""

    rates: Rates
    abandon: AbandonRate
    time_to_decision: list[DecisionTime]
    strategy_distribution: list[StrategyRow]
    experiment_variant_counts: list[VariantCounts]
    daily_trend: list[DayRow]


# GROUPING(strategy, experiment, variant, day) of each grouping set below.
_ALL, _BY_STRATEGY, _BY_VARIANT, _BY_DAY = 0b1111, 0b0111, 0b1001, 0b1110


def log_summary(filters: MetricFilter, *, now: dt.datetime, tz_name: str | None = None) -> LogSummary:
    tz_name = tz_name or settings.TIME_ZONE
    query = sql.Composed(
        [
            _per_log_ctes(filters),
            sql.SQL(
                """
SELECT 'counts', GROUPING(strategy, experiment, variant, day), strategy, experiment, variant, day,
       COALESCE(sum(logs), 0)::bigint, COALESCE(sum(recommended), 0)::bigint, COALESCE(sum(clicked), 0)::bigint,
       COALESCE(sum(rank1), 0)::bigint, COALESCE(sum(multi), 0)::bigint, COALESCE(sum(rr_sum), 0),
       COALESCE(sum(eligible), 0)::bigint, COALESCE(sum(abandoned), 0)::bigint, NULL::bigint,
       NULL::float8, NULL::float8,
       -- the database's collation orders the names, as in the one-by-one queries
       row_number() OVER (PARTITION BY GROUPING(strategy, experiment, variant, day)
                          ORDER BY strategy, experiment, variant)
FROM (
    -- additive counts per cell first (a hash aggregate into few rows), then every grouping from the cells
    SELECT strategy, experiment, variant, (created_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS logs,
           count(*) FILTER (WHERE presented) AS recommended,
           count(*) FILTER (WHERE presented AND first_click_at IS NOT NULL) AS clicked,
           count(*) FILTER (WHERE first_click_rank = 1) AS rank1,
           count(*) FILTER (WHERE clicked_runbooks >= 2) AS multi,
           sum(1.0 / first_click_rank) AS rr_sum,
           count(*) FILTER (WHERE presented AND created_at <= %(now)s - %(abandon_after)s) AS eligible,
           count(*) FILTER (WHERE presented AND created_at <= %(now)s - %(abandon_after)s
                            AND (first_click_at IS NULL OR first_click_at >= created_at + %(abandon_after)s))
               AS abandoned
    FROM per_log GROUP BY 1, 2, 3, 4
) cells
GROUP BY GROUPING SETS ((), (strategy), (experiment, variant), (day))
UNION ALL
SELECT 'decisions', GROUPING(strategy) * 8 + 7, strategy, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_click_at - created_at)),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM first_click_at - created_at)),
       row_number() OVER (PARTITION BY GROUPING(strategy) ORDER BY strategy)
FROM per_log WHERE first_click_at IS NOT NULL
GROUP BY GROUPING SETS ((), (strategy))"""
            ),
        ]
    )
    params = {**filters.params(), "now": now, "abandon_after": ABANDON_AFTER, "tz": tz_name}
    overall, decision = None, None
    decisions, strategies, variants, days = [], [], [], {}
    for row in _run(query, params):
        part, grouping, strategy, experiment, variant, day, logs, recommended, clicked, rank1, multi = row[:11]
        rr_sum, eligible, abandoned, decided, median, p90, name_order = row[11:]
        if part == "decisions":
            timing = DecisionTime(
                strategy=strategy or "",
                clicked=decided,
                median_seconds=None if median is None else float(median),
                p90_seconds=None if p90 is None else float(p90),
            )
            if grouping == _ALL:
                decision = timing
            else:
                decisions.append((name_order, timing))
        elif grouping == _ALL:
            overall = (logs, recommended, clicked, rank1, multi, float(rr_sum), eligible, abandoned)
        elif grouping == _BY_STRATEGY:
            strategies.append(
                (-logs, name_order, StrategyRow(strategy, logs, recommended, clicked, ratio(clicked, recommended)))
            )
        elif grouping == _BY_VARIANT:
            if experiment != "":
                variants.append((name_order, VariantCounts(experiment, variant, logs, recommended, clicked, rank1)))
        elif grouping == _BY_DAY:
            days[day] = DayRow(day, logs, recommended, clicked, ratio(clicked, recommended))
    logs, recommended, clicked, rank1, multi, rr_sum, eligible, abandoned = overall
    zone = ZoneInfo(tz_name)
    day = filters.start.astimezone(zone).date()
    last_day = (filters.end - dt.timedelta(microseconds=1)).astimezone(zone).date()
    trend = []
    while day <= last_day:
        trend.append(days.get(day) or DayRow(day, 0, 0, 0, None))
        day += dt.timedelta(days=1)
    return LogSummary(
        rates=Rates.from_counts(logs, recommended, clicked, rank1, multi, rr_sum),
        abandon=AbandonRate(eligible=eligible, abandoned=abandoned, abandon_rate=ratio(abandoned, eligible)),
        time_to_decision=[decision, *(row for _, row in sorted(decisions))],
        strategy_distribution=[row for *_, row in sorted(strategies, key=lambda item: item[:2])],
        experiment_variant_counts=[row for _, row in sorted(variants)],
        daily_trend=trend,
    )


@dataclass(frozen=True)
class PairSummary:
    """top_runbooks and click_rank_histogram from one scan of the presentations."""

    top_runbooks: list[RunbookRow]
    click_rank_histogram: list[RankRow]


def pair_summary(filters: MetricFilter, *, limit: int = 20) -> PairSummary:
    query = sql.Composed(
        [
            _pairs_ctes(filters),
            sql.SQL(
                """
SELECT t.by_rank, t.runbook_id, r.slug, r.name, t.rank, t.impressions, t.clicks, t.mean_click_rank
FROM (
    SELECT GROUPING(runbook_id) = 1 AS by_rank, runbook_id, rank, count(*) AS impressions,
           count(first_click_at) AS clicks, avg(rank) FILTER (WHERE first_click_at IS NOT NULL) AS mean_click_rank
    FROM pairs GROUP BY GROUPING SETS ((runbook_id), (rank))
) t LEFT JOIN runbooks r ON r.id = t.runbook_id AND NOT t.by_rank
WHERE t.by_rank OR r.id IS NOT NULL
ORDER BY t.by_rank, t.rank, t.impressions DESC, t.clicks DESC, r.slug"""
            ),
        ]
    )
    top, ranks = [], []
    for by_rank, runbook_id, slug, name, rank, impressions, clicks, mean_rank in _run(query, filters.params()):
        if by_rank:
            ranks.append(RankRow(rank, impressions, clicks, ratio(clicks, impressions)))
        elif len(top) < limit:
            top.append(
                RunbookRow(
                    runbook_id=runbook_id,
                    slug=slug,
                    name=name,
                    impressions=impressions,
                    clicks=clicks,
                    impression_ctr=ratio(clicks, impressions),
                    mean_click_rank=None if mean_rank is None else float(mean_rank),
                )
            )
    return PairSummary(top_runbooks=top, click_rank_histogram=ranks)


# --- Learning from clicks (update_runbook_stats) ------------------------------------------------


@dataclass(frozen=True)
class RankCounts:
    runbook_id: uuid.UUID
    rank: int
    impressions: int
    clicks: int


def _allowed_reader(alias: str) -> sql.Composable:
    """The event's user may (still) see the runbook: unrestricted, superuser, or in an allowed group."""
    return sql.SQL(
        """(NOT EXISTS (SELECT 1 FROM runbooks_allowed_groups g WHERE g.runbook_id = {a}.runbook_id)
       OR EXISTS (SELECT 1 FROM auth_user u WHERE u.id = {a}.user_id AND u.is_superuser)
       OR EXISTS (SELECT 1 FROM runbooks_allowed_groups g JOIN auth_user_groups ug ON ug.group_id = g.group_id
                  WHERE g.runbook_id = {a}.runbook_id AND ug.user_id = {a}.user_id))"""
    ).format(a=sql.Identifier(alias))


def feedback_rank_counts(*, since: dt.datetime, until: dt.datetime) -> list[RankCounts]:
    """Per (runbook, presented rank): presentations and clicked presentations (click within 24 h),
    only from users allowed to see the runbook."""
    query = sql.SQL(
        """
WITH presented AS (
    SELECT e.audit_log_id, e.runbook_id, min(e.rank) AS rank, min(e.event_timestamp) AS presented_at
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(since)s AND e.event_timestamp < %(until)s
      AND e.event_type = 'presented' AND e.audit_log_id IS NOT NULL AND e.rank IS NOT NULL AND {allowed}
    GROUP BY e.audit_log_id, e.runbook_id
),
clicked AS (
    SELECT e.audit_log_id, e.runbook_id, min(e.event_timestamp) AS clicked_at
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(since)s AND e.event_timestamp < %(until_window)s
      AND e.event_type = 'clicked_link' AND e.audit_log_id IS NOT NULL
    GROUP BY e.audit_log_id, e.runbook_id
)
SELECT p.runbook_id, p.rank, count(*),
       count(*) FILTER (WHERE c.clicked_at >= p.presented_at AND c.clicked_at < p.presented_at + %(window)s)
FROM presented p LEFT JOIN clicked c ON c.audit_log_id = p.audit_log_id AND c.runbook_id = p.runbook_id
GROUP BY p.runbook_id, p.rank ORDER BY p.runbook_id, p.rank"""
    ).format(allowed=_allowed_reader("e"))
    params = {"since": since, "until": until, "until_window": until + ATTRIBUTION_WINDOW, "window": ATTRIBUTION_WINDOW}
    return [RankCounts(*row) for row in _run(query, params)]


@dataclass(frozen=True)
class OutcomeCounts:
    runbook_id: uuid.UUID
    succeeded: int
    failed: int
    last_interaction_at: dt.datetime | None


def feedback_outcome_counts(*, since: dt.datetime, until: dt.datetime) -> list[OutcomeCounts]:
    """Per runbook: finished executions (succeeded, failed) by allowed users, and the last time an
    engineer clicked, viewed or ran it (any event but ``presented``)."""
    query = sql.SQL(
        """
WITH outcomes AS (
    SELECT x.runbook_id, count(*) FILTER (WHERE x.status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE x.status = 'failed') AS failed
    FROM runbook_executions x
    WHERE x.started_at >= %(since)s AND x.started_at < %(until)s AND x.status IN ('succeeded', 'failed')
      AND {allowed_x}
    GROUP BY x.runbook_id
),
seen AS (
    SELECT e.runbook_id, max(e.event_timestamp) AS last_at
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(since)s AND e.event_timestamp < %(until)s AND e.event_type <> 'presented'
    GROUP BY e.runbook_id
)
SELECT COALESCE(o.runbook_id, s.runbook_id), COALESCE(o.succeeded, 0), COALESCE(o.failed, 0), s.last_at
FROM outcomes o FULL JOIN seen s ON s.runbook_id = o.runbook_id"""
    ).format(allowed_x=_allowed_reader("x"))
    return [OutcomeCounts(*row) for row in _run(query, {"since": since, "until": until})]


def event_watermark() -> tuple[dt.datetime | None, int]:
    """(latest event_timestamp, number of events): what update_runbook_stats has seen."""
    return tuple(_run(sql.SQL("SELECT max(event_timestamp), count(*) FROM runbook_interaction_events"), {})[0])


def execution_watermark() -> int:
    return _run(sql.SQL("SELECT count(*) FROM runbook_executions WHERE status IN ('succeeded', 'failed')"), {})[0][0]


def audit_log_first_created() -> dt.datetime | None:
    return _run(sql.SQL("SELECT min(created_at) FROM ai_helper_audit_logs"), {})[0][0]


def metric_filter(
    *,
    start: dt.datetime,
    end: dt.datetime,
    visible_runbook_ids: Sequence[uuid.UUID] | None = None,
    facts_before: dt.datetime | None = None,
    **filters,
) -> MetricFilter:
    return MetricFilter(
        start=start,
        end=end,
        visible_runbook_ids=None if visible_runbook_ids is None else tuple(visible_runbook_ids),
        facts_before=facts_before,
        **{key: value or None for key, value in filters.items()},
    )
