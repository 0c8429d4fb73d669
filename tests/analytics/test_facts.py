"""The rollup facts give exactly the live answers, whole or split at any watermark."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics import queries
from analytics.models import LogFact, PairFact
from analytics.queries import metric_filter
from analytics.services import SETTLE_AFTER, analytics_facts_refresh, analytics_facts_settled_before
from tests.analytics.fixtures import END, START, T0, build_world

pytestmark = pytest.mark.django_db


def all_metrics(filters):
    return {
        "rates": queries.rates(filters),
        "abandon": queries.abandon_rate(filters, now=END + dt.timedelta(days=5)),
        "ttd": queries.time_to_decision(filters),
        "top": queries.top_runbooks(filters),
        "strategies": queries.strategy_distribution(filters),
        "ranks": queries.click_rank_histogram(filters),
        "variants": queries.experiment_variant_counts(filters),
        "funnel": queries.funnel(filters),
        "trend": queries.daily_trend(filters, tz_name="UTC"),
        "summary": queries.log_summary(filters, now=END + dt.timedelta(days=5), tz_name="UTC"),
        "pair_summary": queries.pair_summary(filters),
    }


def one_by_one_as_summary(metrics):
    return queries.LogSummary(
        rates=metrics["rates"],
        abandon=metrics["abandon"],
        time_to_decision=metrics["ttd"],
        strategy_distribution=metrics["strategies"],
        experiment_variant_counts=metrics["variants"],
        daily_trend=metrics["trend"],
    )


@pytest.mark.parametrize("settled_hours", [2.5, 4.5, 48])
@pytest.mark.parametrize("restricted", [False, True])
@pytest.mark.parametrize("source", [None, "widget"])
def test_facts_and_live_agree(user, settled_hours, restricted, source):
    world = build_world(user)
    analytics_facts_refresh(now=T0 + dt.timedelta(hours=settled_hours) + SETTLE_AFTER)
    settled = analytics_facts_settled_before()
    assert settled == T0 + dt.timedelta(hours=settled_hours)
    visible = [world.a.pk, world.b.pk, world.c.pk] if restricted else None
    live = metric_filter(start=START, end=END, visible_runbook_ids=visible, source=source)
    rolled = metric_filter(start=START, end=END, visible_runbook_ids=visible, source=source, facts_before=settled)
    assert rolled.uses_facts
    assert all_metrics(rolled) == all_metrics(live)
    assert one_by_one_as_summary(all_metrics(rolled)) == all_metrics(rolled)["summary"]
    assert all_metrics(rolled)["pair_summary"] == queries.PairSummary(
        top_runbooks=all_metrics(rolled)["top"], click_rank_histogram=all_metrics(rolled)["ranks"]
    )


@pytest.mark.parametrize("restricted", [False, True])
@pytest.mark.parametrize("filters", [{}, {"strategy": "multiple_options"}, {"experiment": "exp1"}])
@pytest.mark.parametrize("days", [(0, 1), (-2, 3)])
def test_log_summary_is_the_six_per_log_metrics_in_one_query(user, restricted, filters, days):
    world = build_world(user)
    visible = [world.a.pk, world.b.pk, world.c.pk] if restricted else None
    start, end = START + dt.timedelta(days=days[0]), START + dt.timedelta(days=days[1])
    for tz_name in ("UTC", "America/New_York"):
        for now in (END + dt.timedelta(days=5), T0 + dt.timedelta(hours=1, minutes=20)):
            f = metric_filter(start=start, end=end, visible_runbook_ids=visible, **filters)
            summary = queries.log_summary(f, now=now, tz_name=tz_name)
            assert summary == queries.LogSummary(
                rates=queries.rates(f),
                abandon=queries.abandon_rate(f, now=now),
                time_to_decision=queries.time_to_decision(f),
                strategy_distribution=queries.strategy_distribution(f),
                experiment_variant_counts=queries.experiment_variant_counts(f),
                daily_trend=queries.daily_trend(f, tz_name=tz_name),
            )
            assert queries.pair_summary(f, limit=2) == queries.PairSummary(
                top_runbooks=queries.top_runbooks(f, limit=2), click_rank_histogram=queries.click_rank_histogram(f)
            )


def test_refresh_is_incremental_and_idempotent(user):
    build_world(user)
    first = analytics_facts_refresh(now=T0 + dt.timedelta(hours=3) + SETTLE_AFTER)
    assert (first.logs, first.pairs) == (3, 6)  # L1 (A), L2 (A, B, C), L3 (B, C)
    again = analytics_facts_refresh(now=T0 + dt.timedelta(hours=3) + SETTLE_AFTER)
    assert (again.logs, again.pairs) == (0, 0)
    later = analytics_facts_refresh(now=END + dt.timedelta(days=3))
    assert later.logs == 4  # L4..L7
    assert LogFact.objects.count() == 7
    assert PairFact.objects.count() == 10
    l2_b = PairFact.objects.get(audit_log_id=world_log(user, "widget"), runbook_id__isnull=False, rank=2)
    assert l2_b.clicked_at is not None and l2_b.viewed_at is None


def world_log(user, source):
    from audit.models import AuditLog

    return AuditLog.objects.get(user=user, source=source).pk
