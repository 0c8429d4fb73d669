"""The rollup facts give exactly the live answers, whole or split at any watermark."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.models import LogFact, PairFact
from analytics.services.facts import SETTLE_AFTER, analytics_facts_refresh, analytics_facts_settled_before
from analytics.sql.common import metric_filter
from analytics.sql.funnel import funnel
from analytics.sql.metrics import log_summary, pair_summary
from audit.models import AuditLog
from tests.analytics.fixtures import END, START, T0, build_world, event, make_log

pytestmark = pytest.mark.django_db


def all_metrics(filters):
    """The three statements the dashboard runs."""
    return {
        "summary": log_summary(filters, now=END + dt.timedelta(days=5), tz_name="UTC"),
        "pair_summary": pair_summary(filters),
        "funnel": funnel(filters),
    }


# (restricted, source): (audit logs, recommended, clicked, first click at rank 1, multi-clicked),
# (slug, impressions, clicks) of the top runbooks, (rank, impressions, clicks), funnel counts; worked out
# in tests/analytics/test_sql_metrics.py. The widget's only log is L2 (A1 B2 C3; B then A clicked, A's
# view came before its click).
WIDGET = (
    (1, 1, 1, 0, 1),
    [("t/a", 1, 1), ("t/b", 1, 1), ("t/c", 1, 0)],
    [(1, 1, 1), (2, 1, 1), (3, 1, 0)],
    [3, 2, 0, 0, 0],
)
KEY_FIGURES = {
    (False, None): (
        (6, 5, 3, 2, 2),
        [("t/a", 3, 3), ("t/c", 3, 0), ("t/b", 2, 1), ("t/r", 1, 1)],
        [(1, 5, 3), (2, 3, 2), (3, 1, 0)],
        [9, 5, 1, 1, 1],
    ),
    (True, None): (
        (6, 5, 3, 1, 1),
        [("t/a", 3, 3), ("t/c", 3, 0), ("t/b", 2, 1)],
        [(1, 4, 2), (2, 3, 2), (3, 1, 0)],
        [8, 4, 1, 1, 1],
    ),
    (False, "widget"): WIDGET,
    (True, "widget"): WIDGET,
}


def key_figures(metrics):
    rates, pairs = metrics["summary"].rates, metrics["pair_summary"]
    return (
        (rates.audit_logs, rates.recommended, rates.clicked, rates.first_click_rank1, rates.multi_clicked),
        [(r.slug, r.impressions, r.clicks) for r in pairs.top_runbooks],
        [(r.rank, r.impressions, r.clicks) for r in pairs.click_rank_histogram],
        [s.count for s in metrics["funnel"]],
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
    assert key_figures(all_metrics(rolled)) == KEY_FIGURES[(restricted, source)]


def test_a_settled_log_whose_every_solution_is_hidden_is_no_recommendation_for_that_reader(user):
    world = build_world(user)
    at = T0 + dt.timedelta(minutes=30)
    log = make_log(user=user, created_at=at, strategy="single_solution", presented=[world.r])
    event(log, world.r, "clicked_link", at + dt.timedelta(seconds=2))
    analytics_facts_refresh(now=END + dt.timedelta(days=3))
    visible = [world.a.pk, world.b.pk, world.c.pk]
    live = metric_filter(start=START, end=END, visible_runbook_ids=visible)
    rolled = metric_filter(
        start=START, end=END, visible_runbook_ids=visible, facts_before=analytics_facts_settled_before()
    )
    assert all_metrics(rolled) == all_metrics(live)
    rates = all_metrics(rolled)["summary"].rates
    # The fixtures' 6 logs, 5 recommended, 3 clicked, plus this one: counted, neither recommended nor clicked.
    assert (rates.audit_logs, rates.recommended, rates.clicked) == (7, 5, 3)


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
    return AuditLog.objects.get(user=user, source=source).pk
