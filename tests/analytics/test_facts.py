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
    }


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
