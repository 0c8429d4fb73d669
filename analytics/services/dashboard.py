"""The dashboard: every metric of a range for one reader, counting only the runbooks they may see."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from analytics.services.experiments import VariantResult, experiment_analysis
from analytics.services.facts import analytics_facts_settled_before
from analytics.sql.common import metric_filter
from analytics.sql.metrics import (
    AbandonRate,
    DayRow,
    DecisionTime,
    FunnelStep,
    RankRow,
    Rates,
    RunbookRow,
    StrategyRow,
    funnel,
    log_summary,
    pair_summary,
)
from runbooks.selectors import visible_runbooks


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
    experiments: list[VariantResult] = field(default_factory=list)


def visible_runbook_ids_for(user) -> list | None:
    """None (no restriction) for superusers, else the ids of the runbooks ``user`` may see."""
    if user.is_superuser:
        return None
    return list(visible_runbooks(user).values_list("pk", flat=True))


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
) -> Dashboard:
    """Every metric for ``user`` (only runbooks they may see) over [start, end)."""
    options = {"source": source, "strategy": strategy, "experiment": experiment, "variant": variant}
    filters = metric_filter(
        start=start,
        end=end,
        visible_runbook_ids=visible_runbook_ids_for(user),
        facts_before=analytics_facts_settled_before(),
        **options,
    )
    # Three statements: the per-log metrics share one scan, top runbooks and ranks another, then the funnel.
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
        experiments=experiment_analysis(logs.experiment_variant_counts),
    )
