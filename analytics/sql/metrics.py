"""The dashboard's statements, the one definition of every metric (docs/analytics.md):

- ``log_summary``: rates, abandon rate, time to decision, strategy distribution, experiment variant
  counts and daily trend from one scan of the per-log rows;
- ``pair_summary``: top runbooks and the click-rank histogram from one scan of the presentations;
- ``funnel``: presented -> clicked -> viewed -> started -> succeeded per presentation.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from psycopg import sql

from analytics.histograms import percentile
from analytics.sql.common import (
    MetricFilter,
    bucket_of,
    float_or_none,
    pairs_ctes,
    per_log_ctes,
    ratio,
    rollup_condition,
    run_read,
    visible_clause,
)

ABANDON_AFTER = dt.timedelta(minutes=30)


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


@dataclass(frozen=True)
class AbandonRate:
    eligible: int  # recommended audit logs at least 30 minutes old
    abandoned: int  # ... without a click within 30 minutes
    abandon_rate: float | None


@dataclass(frozen=True)
class DecisionTime:
    """Seconds from the audit log's created_at to its first click."""

    strategy: str  # "" = overall
    clicked: int
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class StrategyRow:
    strategy: str
    audit_logs: int
    recommended: int
    clicked: int
    click_through_rate: float | None


@dataclass(frozen=True)
class VariantCounts:
    """Per (experiment, variant) of audit logs that carry one: the counts behind CTR and first-choice accuracy."""

    experiment: str
    variant: str
    audit_logs: int
    recommended: int
    clicked: int
    first_click_rank1: int


@dataclass(frozen=True)
class DayRow:
    day: dt.date
    queries: int
    recommendations: int
    clicks: int  # recommended audit logs with >= 1 click
    click_through_rate: float | None


@dataclass(frozen=True)
class LogSummary:
    """Every per-log metric of the range, from one scan of the per-log rows.

    ``time_to_decision``: overall (strategy "") first, then per strategy by name. ``strategy_distribution``:
    by audit logs, most first, then by name. ``daily_trend``: every day of the range in the time zone,
    days without data as zeros.
    """

    rates: Rates
    abandon: AbandonRate
    time_to_decision: list[DecisionTime]
    strategy_distribution: list[StrategyRow]
    experiment_variant_counts: list[VariantCounts]
    daily_trend: list[DayRow]


# GROUPING(strategy, experiment, variant, day) of each grouping set of LOG_SUMMARY.
_ALL, _BY_STRATEGY, _BY_VARIANT, _BY_DAY = 0b1111, 0b0111, 0b1001, 0b1110

# The additive per-log counts of a cell, shared with the daily rollup (analytics/sql/rollups.py).
LOG_CELL_COUNTS = """count(*) AS logs,
           count(*) FILTER (WHERE presented) AS recommended,
           count(*) FILTER (WHERE presented AND first_click_at IS NOT NULL) AS clicked,
           count(*) FILTER (WHERE first_click_rank = 1) AS rank1,
           count(*) FILTER (WHERE clicked_runbooks >= 2) AS multi,
           COALESCE(sum(1.0 / first_click_rank), 0) AS rr_sum"""

LOG_SUMMARY_COUNTS = """
SELECT 'counts', GROUPING(strategy, experiment, variant, day), strategy, experiment, variant, day,
       COALESCE(sum(logs), 0)::bigint, COALESCE(sum(recommended), 0)::bigint, COALESCE(sum(clicked), 0)::bigint,
       COALESCE(sum(rank1), 0)::bigint, COALESCE(sum(multi), 0)::bigint, COALESCE(sum(rr_sum), 0),
       COALESCE(sum(eligible), 0)::bigint, COALESCE(sum(abandoned), 0)::bigint, NULL::bigint,
       NULL::float8, NULL::float8,
       -- names are ordered by the database's collation
       row_number() OVER (PARTITION BY GROUPING(strategy, experiment, variant, day)
                          ORDER BY strategy, experiment, variant)
FROM (
    -- additive counts per cell first (a hash aggregate into few rows), then every grouping from the cells
    SELECT strategy, experiment, variant, (created_at AT TIME ZONE %(tz)s)::date AS day,
           {counts},
           count(*) FILTER (WHERE presented AND created_at <= %(now)s - %(abandon_after)s) AS eligible,
           count(*) FILTER (WHERE presented AND created_at <= %(now)s - %(abandon_after)s
                            AND (first_click_at IS NULL OR first_click_at >= created_at + %(abandon_after)s))
               AS abandoned
    FROM per_log GROUP BY 1, 2, 3, 4{rollup}
) cells
GROUP BY GROUPING SETS ((), (strategy), (experiment, variant), (day))
UNION ALL"""

# Rolled-up days are settled (older than 24 h), so every recommended log is old enough for the abandon rate.
LOG_ROLLUP_CELLS = """
    UNION ALL
    SELECT r.strategy, r.experiment, r.variant, r.day, r.logs, r.recommended, r.clicked, r.rank1, r.multi,
           r.rr_sum, r.recommended, r.abandoned
    FROM analytics_daily_logs r WHERE {where}"""

LOG_SUMMARY_DECISIONS = """
SELECT 'decisions', GROUPING(strategy) * 8 + 7, strategy, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_click_at - created_at)),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM first_click_at - created_at)),
       row_number() OVER (PARTITION BY GROUPING(strategy) ORDER BY strategy)
FROM per_log WHERE first_click_at IS NOT NULL
GROUP BY GROUPING SETS ((), (strategy))"""

# With rollups: the time to decision as bucket counts (analytics/histograms.py), live and rolled up.
LOG_SUMMARY_BUCKETS = """
SELECT 'buckets', GROUPING(strategy) * 8 + 7, strategy, NULL, NULL, NULL, bucket::bigint, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, sum(n)::bigint, NULL::float8, NULL::float8,
       dense_rank() OVER (PARTITION BY GROUPING(strategy) ORDER BY strategy)
FROM (
    SELECT strategy, {bucket} AS bucket, count(*) AS n FROM per_log WHERE first_click_at IS NOT NULL GROUP BY 1, 2
    UNION ALL
    SELECT h.strategy, h.bucket, h.count FROM analytics_daily_histograms h WHERE {where} AND h.measure = 0
) b
GROUP BY GROUPING SETS ((bucket), (strategy, bucket))"""

DECISION_SECONDS = sql.SQL("extract(epoch FROM first_click_at - created_at)")


def log_summary_statement(filters: MetricFilter) -> sql.Composable:
    if filters.rollup is None:
        return sql.Composed(
            [
                per_log_ctes(filters),
                sql.SQL(LOG_SUMMARY_COUNTS).format(counts=sql.SQL(LOG_CELL_COUNTS), rollup=sql.SQL("")),
                sql.SQL(LOG_SUMMARY_DECISIONS),
            ]
        )
    where = rollup_condition("r", filters, levels=False)
    return sql.Composed(
        [
            per_log_ctes(filters),
            sql.SQL(LOG_SUMMARY_COUNTS).format(
                counts=sql.SQL(LOG_CELL_COUNTS), rollup=sql.SQL(LOG_ROLLUP_CELLS).format(where=where)
            ),
            sql.SQL(LOG_SUMMARY_BUCKETS).format(
                bucket=bucket_of(DECISION_SECONDS), where=rollup_condition("h", filters)
            ),
        ]
    )


def log_summary(filters: MetricFilter, *, now: dt.datetime, tz_name: str | None = None) -> LogSummary:
    """The per-log metrics of ``filters``; ``now`` decides which logs are old enough for the abandon rate,
    ``tz_name`` (default settings.TIME_ZONE) the calendar days of the trend."""
    tz_name = tz_name or settings.TIME_ZONE
    query = log_summary_statement(filters)
    params = {**filters.params(), "now": now, "abandon_after": ABANDON_AFTER, "tz": tz_name}
    overall, decision = None, None
    decisions, strategies, variants, days = [], [], [], {}
    buckets: dict[tuple[int, str], dict[int, int]] = {}
    for row in run_read(query, params):
        part, grouping, strategy, experiment, variant, day, logs, recommended, clicked, rank1, multi = row[:11]
        rr_sum, eligible, abandoned, decided, median, p90, name_order = row[11:]
        if part == "buckets":
            buckets.setdefault((name_order if grouping != _ALL else 0, strategy or ""), {})[logs] = decided
        elif part == "decisions":
            timing = DecisionTime(strategy or "", decided, float_or_none(median), float_or_none(p90))
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
    for (name_order, strategy), counts in buckets.items():
        timing = DecisionTime(strategy, sum(counts.values()), percentile(counts, 0.5), percentile(counts, 0.9))
        if name_order == 0:
            decision = timing
        else:
            decisions.append((name_order, timing))
    if decision is None:
        decision = DecisionTime("", 0, None, None)
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
class RunbookRow:
    """Per visible runbook: impressions (times presented), clicks (presentations clicked), CTR, mean click rank."""

    runbook_id: uuid.UUID
    slug: str
    name: str
    impressions: int
    clicks: int
    impression_ctr: float | None
    mean_click_rank: float | None


@dataclass(frozen=True)
class RankRow:
    """Per presented rank: presentations and clicked presentations."""

    rank: int
    impressions: int
    clicks: int
    impression_ctr: float | None


@dataclass(frozen=True)
class CarriedRow:
    """Presentations newly retrieved for their turn (False) or carried over from earlier in the conversation
    (True): a carried-over presentation counts for the turn that showed it, and so do its clicks."""

    carried_over: bool
    impressions: int
    clicks: int
    impression_ctr: float | None


@dataclass(frozen=True)
class PairSummary:
    """``top_runbooks`` by impressions, then clicks, then slug; ``click_rank_histogram`` by rank;
    ``carried_split`` newly retrieved first."""

    top_runbooks: list[RunbookRow]
    click_rank_histogram: list[RankRow]
    carried_split: list[CarriedRow]


PAIR_UNITS = """
WITH pair_units AS (
    SELECT 'runbook' AS kind, runbook_id, NULL::smallint AS rank, NULL::boolean AS carried_over,
           count(*) AS impressions, count(first_click_at) AS clicks,
           sum(rank) FILTER (WHERE first_click_at IS NOT NULL) AS click_rank_sum
    FROM pairs GROUP BY runbook_id
    UNION ALL
    SELECT 'rank', NULL, rank, carried_over, count(*), count(first_click_at), NULL
    FROM pairs GROUP BY rank, carried_over"""

PAIR_ROLLUP_UNITS = """
    UNION ALL
    SELECT 'runbook', d.runbook_id, NULL, NULL, d.impressions, d.clicks, d.click_rank_sum
    FROM analytics_daily_runbooks d WHERE {runbooks}{vis}
    UNION ALL
    SELECT 'rank', NULL, p.rank, p.carried_over, p.impressions, p.clicks, NULL
    FROM analytics_daily_pairs p WHERE {pairs}"""

# GROUPING(runbook_id, rank, carried_over) of the sets (kind, runbook_id), (kind, rank), (kind, carried_over).
_BY_RUNBOOK, _BY_RANK, _BY_CARRIED = 0b011, 0b101, 0b110

PAIR_SUMMARY = """
)
SELECT t.grouping, t.runbook_id, r.slug, r.name, t.rank, t.carried_over, t.impressions, t.clicks, t.click_rank_sum
FROM (
    SELECT GROUPING(runbook_id, rank, carried_over) AS grouping, runbook_id, rank, carried_over,
           sum(impressions)::bigint AS impressions, sum(clicks)::bigint AS clicks, sum(click_rank_sum) AS click_rank_sum
    FROM pair_units GROUP BY GROUPING SETS ((kind, runbook_id), (kind, rank), (kind, carried_over))
    HAVING (kind = 'runbook' AND GROUPING(runbook_id, rank, carried_over) = 3)
        OR (kind = 'rank' AND GROUPING(runbook_id, rank, carried_over) IN (5, 6))
) t LEFT JOIN runbooks r ON r.id = t.runbook_id AND t.grouping = 3
WHERE t.grouping <> 3 OR r.id IS NOT NULL
ORDER BY t.grouping, t.rank, t.carried_over, t.impressions DESC, t.clicks DESC, r.slug"""


def pair_summary_statement(filters: MetricFilter) -> sql.Composable:
    parts = [pairs_ctes(filters), sql.SQL(",\n"), sql.SQL(PAIR_UNITS.removeprefix("\nWITH "))]
    if filters.rollup is not None:
        parts.append(
            sql.SQL(PAIR_ROLLUP_UNITS).format(
                runbooks=rollup_condition("d", filters, audience=False, coarse_strategy=False),
                vis=visible_clause("d", filters),
                pairs=rollup_condition("p", filters),
            )
        )
    parts.append(sql.SQL(PAIR_SUMMARY))
    return sql.Composed(parts)


def pair_summary(filters: MetricFilter, *, limit: int = 20) -> PairSummary:
    """The per-presentation metrics of ``filters``; at most ``limit`` top runbooks."""
    top, ranks, carried = [], [], []
    for grouping, runbook_id, slug, name, rank, carried_over, impressions, clicks, rank_sum in run_read(
        pair_summary_statement(filters), filters.params()
    ):
        if grouping == _BY_RANK:
            ranks.append(RankRow(rank, impressions, clicks, ratio(clicks, impressions)))
        elif grouping == _BY_CARRIED:
            carried.append(CarriedRow(carried_over, impressions, clicks, ratio(clicks, impressions)))
        elif len(top) < limit:
            top.append(
                RunbookRow(
                    runbook_id=runbook_id,
                    slug=slug,
                    name=name,
                    impressions=impressions,
                    clicks=clicks,
                    impression_ctr=ratio(clicks, impressions),
                    mean_click_rank=None if not clicks else float(rank_sum) / clicks,
                )
            )
    return PairSummary(top_runbooks=top, click_rank_histogram=ranks, carried_split=carried)
