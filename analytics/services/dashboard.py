"""The dashboard: every metric of a range for one reader, counting only the runbooks they may see."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from analytics.services.experiments import VariantResult, experiment_analysis
from analytics.services.facts import analytics_facts_settled_before
from analytics.services.rollups import rollup_span_for, visible_runbook_ids_for
from analytics.sql.common import MetricFilter, metric_filter
from analytics.sql.funnel import FunnelStep, funnel
from analytics.sql.metrics import (
    AbandonRate,
    CarriedRow,
    DayRow,
    DecisionTime,
    RankRow,
    Rates,
    RunbookRow,
    StrategyRow,
    log_summary,
    pair_summary,
)
from analytics.sql.sources import AlertOutcomes, SourceRow, alert_outcomes, source_summary


@dataclass
class Dashboard:
    start: dt.datetime
    end: dt.datetime
    time_zone: str
    filters: dict
    rates: Rates
    abandon: AbandonRate
    time_to_decision: list[DecisionTime]
    top_runbooks: list[RunbookRow]
    strategy_distribution: list[StrategyRow]
    click_rank_histogram: list[RankRow]
    funnel: list[FunnelStep]
    daily_trend: list[DayRow]
    carried_split: list[CarriedRow] = field(default_factory=list)
    experiments: list[VariantResult] = field(default_factory=list)
    by_source: list[SourceRow] = field(default_factory=list)
    alert_outcomes: AlertOutcomes | None = None


def reader_filter(*, user, start: dt.datetime, end: dt.datetime, rollups: bool = True, **options) -> MetricFilter:
    """The filter of [start, end) for ``user``: their runbooks, the facts, their audience's daily rollups."""
    visible = visible_runbook_ids_for(user)
    return metric_filter(
        start=start,
        end=end,
        visible_runbook_ids=visible,
        facts_before=analytics_facts_settled_before(),
        rollup=rollup_span_for(start=start, end=end, visible_runbook_ids=visible) if rollups else None,
        **options,
    )


def analytics_dashboard(
    *,
    user,
    start: dt.datetime,
    end: dt.datetime,
    source: str | None = None,
    strategy: str | None = None,
    experiment: str | None = None,
    variant: str | None = None,
    now: dt.datetime | None = None,
    top_limit: int = 20,
    rollups: bool = True,
) -> Dashboard:
    """Every metric for ``user`` (only runbooks they may see) over [start, end); ``rollups`` False reads
    the facts and events only (the benchmark's baseline)."""
    options = {"source": source, "strategy": strategy, "experiment": experiment, "variant": variant}
    filters = reader_filter(user=user, start=start, end=end, rollups=rollups, **options)
    # Five statements: the per-log metrics share one scan, top runbooks and ranks another, then the funnel,
    # the per-source split and the alerts' outcomes.
    logs = log_summary(filters, now=now or timezone.now())
    pairs = pair_summary(filters, limit=top_limit)
    return Dashboard(
        start=start,
        end=end,
        time_zone=settings.TIME_ZONE,
        filters={key: value for key, value in options.items() if value},
        rates=logs.rates,
        abandon=logs.abandon,
        time_to_decision=logs.time_to_decision,
        top_runbooks=pairs.top_runbooks,
        strategy_distribution=logs.strategy_distribution,
        click_rank_histogram=pairs.click_rank_histogram,
        funnel=funnel(filters),
        daily_trend=logs.daily_trend,
        carried_split=pairs.carried_split,
        experiments=experiment_analysis(logs.experiment_variant_counts),
        by_source=source_summary(filters),
        alert_outcomes=alert_outcomes(filters),
    )
