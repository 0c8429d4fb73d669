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

from analytics.sql.common import (
    MetricFilter,
    filter_condition,
    live_chain_ctes,
    pairs_ctes,
    per_log_ctes,
    ratio,
    run_read,
    visible_clause,
)

ABANDON_AFTER = dt.timedelta(minutes=30)
FUNNEL_STEPS = ("presented", "clicked_link", "viewed_detail", "started_execution", "succeeded")


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

LOG_SUMMARY = sql.SQL(
    """
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
)


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def log_summary(filters: MetricFilter, *, now: dt.datetime, tz_name: str | None = None) -> LogSummary:
    """The per-log metrics of ``filters``; ``now`` decides which logs are old enough for the abandon rate,
    ``tz_name`` (default settings.TIME_ZONE) the calendar days of the trend."""
    tz_name = tz_name or settings.TIME_ZONE
    query = sql.Composed([per_log_ctes(filters), LOG_SUMMARY])
    params = {**filters.params(), "now": now, "abandon_after": ABANDON_AFTER, "tz": tz_name}
    overall, decision = None, None
    decisions, strategies, variants, days = [], [], [], {}
    for row in run_read(query, params):
        part, grouping, strategy, experiment, variant, day, logs, recommended, clicked, rank1, multi = row[:11]
        rr_sum, eligible, abandoned, decided, median, p90, name_order = row[11:]
        if part == "decisions":
            timing = DecisionTime(strategy or "", decided, _float_or_none(median), _float_or_none(p90))
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
class PairSummary:
    """``top_runbooks`` by impressions, then clicks, then slug; ``click_rank_histogram`` by rank."""

    top_runbooks: list[RunbookRow]
    click_rank_histogram: list[RankRow]


PAIR_SUMMARY = sql.SQL(
    """
SELECT t.by_rank, t.runbook_id, r.slug, r.name, t.rank, t.impressions, t.clicks, t.mean_click_rank
FROM (
    SELECT GROUPING(runbook_id) = 1 AS by_rank, runbook_id, rank, count(*) AS impressions,
           count(first_click_at) AS clicks, avg(rank) FILTER (WHERE first_click_at IS NOT NULL) AS mean_click_rank
    FROM pairs GROUP BY GROUPING SETS ((runbook_id), (rank))
) t LEFT JOIN runbooks r ON r.id = t.runbook_id AND NOT t.by_rank
WHERE t.by_rank OR r.id IS NOT NULL
ORDER BY t.by_rank, t.rank, t.impressions DESC, t.clicks DESC, r.slug"""
)


def pair_summary(filters: MetricFilter, *, limit: int = 20) -> PairSummary:
    """The per-presentation metrics of ``filters``; at most ``limit`` top runbooks."""
    query = sql.Composed([pairs_ctes(filters), PAIR_SUMMARY])
    top, ranks = [], []
    for by_rank, runbook_id, slug, name, rank, impressions, clicks, mean_rank in run_read(query, filters.params()):
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
                    mean_click_rank=_float_or_none(mean_rank),
                )
            )
    return PairSummary(top_runbooks=top, click_rank_histogram=ranks)


@dataclass(frozen=True)
class FunnelStep:
    step: str
    count: int
    step_conversion: float | None  # from the previous step
    overall_conversion: float | None  # from presented
    median_seconds_from_previous: float | None


def _chain_ctes(filters: MetricFilter) -> sql.Composable:
    """WITH ... chain: the funnel step times of live presentations, plus the settled ones from the pair facts."""
    parts = [
        sql.SQL("WITH "),
        live_chain_ctes(filters),
        sql.SQL(
            ",\nchain AS (\n    SELECT presented_at, clicked_at, viewed_at, started_at, succeeded_at FROM live_chain"
        ),
    ]
    if filters.uses_facts:
        parts.append(
            sql.SQL(
                """
    UNION ALL
    SELECT f.presented_at, f.clicked_at, f.viewed_at, f.started_at, f.succeeded_at
    FROM analytics_pair_facts f WHERE {where}{vis}"""
            ).format(where=filter_condition("f", filters, facts=True), vis=visible_clause("f", filters))
        )
    parts.append(sql.SQL("\n)"))
    return sql.Composed(parts)


FUNNEL = sql.SQL(
    """
SELECT count(*), count(clicked_at), count(viewed_at), count(started_at), count(succeeded_at),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM clicked_at - presented_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM viewed_at - clicked_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - viewed_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM succeeded_at - started_at))
FROM chain"""
)


def funnel(filters: MetricFilter) -> list[FunnelStep]:
    """presented -> clicked_link -> viewed_detail -> started_execution -> succeeded per (audit log, runbook).

    Each step is the first event of its type at or after the previous step and within 24 h of the
    presentation; events of a step that come before the previous step do not count.
    """
    row = run_read(sql.Composed([_chain_ctes(filters), FUNNEL]), filters.params())[0]
    counts, medians = row[:5], (None, *row[5:])
    return [
        FunnelStep(
            step=name,
            count=counts[index],
            step_conversion=None if index == 0 else ratio(counts[index], counts[index - 1]),
            overall_conversion=None if index == 0 else ratio(counts[index], counts[0]),
            median_seconds_from_previous=_float_or_none(medians[index]),
        )
        for index, name in enumerate(FUNNEL_STEPS)
    ]
