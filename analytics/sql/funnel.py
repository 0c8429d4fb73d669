"""The funnel: presented -> clicked -> viewed -> started -> succeeded per presentation (docs/analytics.md)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from analytics.histograms import percentile
from analytics.sql.common import (
    MetricFilter,
    bucket_of,
    filter_condition,
    float_or_none,
    live_chain_ctes,
    ratio,
    rollup_condition,
    run_read,
    visible_clause,
)

FUNNEL_STEPS = ("presented", "clicked_link", "viewed_detail", "started_execution", "succeeded")


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

# The seconds of each funnel step from the previous one: measures 1-4 of analytics_daily_histograms.
FUNNEL_STEP_SECONDS = """CROSS JOIN LATERAL (VALUES (1, extract(epoch FROM {a}clicked_at - {a}presented_at)),
                                (2, extract(epoch FROM {a}viewed_at - {a}clicked_at)),
                                (3, extract(epoch FROM {a}started_at - {a}viewed_at)),
                                (4, extract(epoch FROM {a}succeeded_at - {a}started_at))) m(measure, seconds)"""

# With rollups: counts from the live/facts chain plus the rolled-up days, and step times as bucket counts.
FUNNEL_ROLLUP = """
SELECT 0, NULL::int, count(*), count(clicked_at), count(viewed_at), count(started_at), count(succeeded_at)
FROM chain
UNION ALL
SELECT 0, NULL, sum(impressions)::bigint, sum(clicks)::bigint, sum(viewed)::bigint, sum(started)::bigint,
       sum(succeeded)::bigint
FROM analytics_daily_pairs p WHERE {pairs}
UNION ALL
SELECT measure, bucket, sum(n)::bigint, NULL, NULL, NULL, NULL FROM (
    SELECT m.measure, {bucket} AS bucket, count(*) AS n FROM chain {steps} WHERE m.seconds IS NOT NULL GROUP BY 1, 2
    UNION ALL
    SELECT h.measure, h.bucket, h.count FROM analytics_daily_histograms h WHERE {hist} AND h.measure BETWEEN 1 AND 4
) b GROUP BY measure, bucket"""


def _funnel_rollup_row(filters: MetricFilter) -> tuple:
    """One row like FUNNEL's: the summed counts and the step medians from the bucket counts."""
    query = sql.SQL(FUNNEL_ROLLUP).format(
        pairs=rollup_condition("p", filters),
        bucket=bucket_of(sql.SQL("m.seconds")),
        steps=sql.SQL(FUNNEL_STEP_SECONDS.format(a="")),
        hist=rollup_condition("h", filters, coarse_strategy=False),
    )
    counts, buckets = [0] * 5, {measure: {} for measure in range(1, 5)}
    for measure, bucket, first, *rest in run_read(sql.Composed([_chain_ctes(filters), query]), filters.params()):
        if measure == 0:
            counts = [total + (value or 0) for total, value in zip(counts, (first, *rest), strict=True)]
        else:
            buckets[measure][bucket] = first
    return (*counts, *(percentile(buckets[measure], 0.5) for measure in range(1, 5)))


def funnel(filters: MetricFilter) -> list[FunnelStep]:
    """presented -> clicked_link -> viewed_detail -> started_execution -> succeeded per (audit log, runbook).

    Each step is the first event of its type at or after the previous step and within 24 h of the
    presentation; events of a step that come before the previous step do not count.
    """
    if filters.rollup is not None:
        row = _funnel_rollup_row(filters)
    else:
        row = run_read(sql.Composed([_chain_ctes(filters), FUNNEL]), filters.params())[0]
    counts, medians = row[:5], (None, *row[5:])
    return [
        FunnelStep(
            step=name,
            count=counts[index],
            step_conversion=None if index == 0 else ratio(counts[index], counts[index - 1]),
            overall_conversion=None if index == 0 else ratio(counts[index], counts[0]),
            median_seconds_from_previous=float_or_none(medians[index]),
        )
        for index, name in enumerate(FUNNEL_STEPS)
    ]
