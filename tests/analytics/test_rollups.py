"""The daily rollups answer like the live SQL: counts exactly, percentiles within one bucket
(analytics/histograms.py), for everyone and for a restricted reader, whole days or with edges and a tail."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.db.models import Sum

from analytics.histograms import percentile, within_bucket_error
from analytics.models import DailyLogRollup, RollupAudience
from analytics.services.facts import analytics_facts_refresh, analytics_facts_settled_before
from analytics.services.rollups import analytics_rollups_refresh, rollup_span_for, visible_runbook_ids_for
from analytics.sql.common import metric_filter
from analytics.sql.funnel import funnel
from analytics.sql.metrics import log_summary, pair_summary
from audit.details import PresentedSolution
from tests.analytics.fixtures import END, START, T0, build_world, event, make_log
from tests.analytics.test_facts import KEY_FIGURES, key_figures
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
NOW = END + dt.timedelta(days=5)


def metrics(filters):
    return {
        "summary": log_summary(filters, now=NOW, tz_name="UTC"),
        "pair_summary": pair_summary(filters),
        "funnel": funnel(filters),
    }


def refresh(now):
    report = analytics_facts_refresh(now=now)
    analytics_rollups_refresh(settled_before=report.settled_before)


def assert_same(rolled, live):
    """Every count equal; every median and p90 within one bucket of the exact value."""
    a, b = rolled["summary"], live["summary"]
    assert (a.rates, a.abandon, a.strategy_distribution) == (b.rates, b.abandon, b.strategy_distribution)
    assert (a.experiment_variant_counts, a.daily_trend) == (b.experiment_variant_counts, b.daily_trend)
    assert [(t.strategy, t.clicked) for t in a.time_to_decision] == [
        (t.strategy, t.clicked) for t in b.time_to_decision
    ]
    for estimate, exact in zip(a.time_to_decision, b.time_to_decision, strict=True):
        for x, y in ((estimate.median_seconds, exact.median_seconds), (estimate.p90_seconds, exact.p90_seconds)):
            assert (x is None) == (y is None)
            assert y is None or within_bucket_error(x, y), (x, y)
    assert rolled["pair_summary"] == live["pair_summary"]
    for estimate, exact in zip(rolled["funnel"], live["funnel"], strict=True):
        assert (estimate.step, estimate.count, estimate.step_conversion) == (
            exact.step,
            exact.count,
            exact.step_conversion,
        )
        x, y = estimate.median_seconds_from_previous, exact.median_seconds_from_previous
        assert (x is None) == (y is None)
        assert y is None or within_bucket_error(x, y), (estimate.step, x, y)


@pytest.fixture
def restricted_staff(db):
    return UserFactory(username="restricted-staff", is_staff=True)  # not in the group "secret"


@pytest.mark.parametrize("restricted", [False, True])
@pytest.mark.parametrize("source", [None, "widget"])
def test_rolled_up_day_gives_the_hand_worked_figures(user, restricted_staff, restricted, source):
    world = build_world(user)
    refresh(END + dt.timedelta(days=3))
    visible = visible_runbook_ids_for(restricted_staff) if restricted else None
    if restricted:
        assert sorted(visible) == sorted([world.a.pk, world.b.pk, world.c.pk])
    span = rollup_span_for(start=START, end=END, visible_runbook_ids=visible)
    assert span is not None and (span.first_day, span.end_day) == (START.date(), END.date())
    rolled = metric_filter(
        start=START,
        end=END,
        visible_runbook_ids=visible,
        source=source,
        facts_before=analytics_facts_settled_before(),
        rollup=span,
    )
    live = metric_filter(start=START, end=END, visible_runbook_ids=visible, source=source)
    assert_same(metrics(rolled), metrics(live))
    assert key_figures(metrics(rolled)) == KEY_FIGURES[(restricted, source)]


def test_each_audience_has_its_own_rollup_and_a_staff_member_with_new_visibility_gets_the_exact_path(
    user, restricted_staff
):
    world = build_world(user)
    refresh(END + dt.timedelta(days=3))
    assert RollupAudience.objects.count() == 2  # everyone, and the staff who may not see R
    rows = {
        audience.key: DailyLogRollup.objects.filter(audience=audience, day=START.date()).aggregate(
            logs=Sum("logs"), recommended=Sum("recommended"), rank1=Sum("rank1")
        )
        for audience in RollupAudience.objects.all()
    }
    # L5 (R1 A2, R clicked first) has a rank-1 first click for everyone; for the staff who may not see R
    # its first click is A at rank 2 (tests/analytics/test_sql_metrics.py works the figures out).
    assert rows.pop("everyone") == {"logs": 6, "recommended": 5, "rank1": 2}
    assert list(rows.values()) == [{"logs": 6, "recommended": 5, "rank1": 1}]
    # A reader whose hidden set no audience holds (sees only A) has no rollups yet: facts path, still exact.
    assert rollup_span_for(start=START, end=END, visible_runbook_ids=[world.a.pk]) is None


def generated_world(user, runbooks, *, days=6, per_day=40, seed=7):
    """Random answers over ``days`` days from T0's day, with clicks, views, starts and successes at known
    times; some presentations carried over."""
    rng = random.Random(seed)
    first = START - dt.timedelta(days=2)
    for day in range(days):
        for _ in range(per_day):
            created = first + dt.timedelta(days=day, seconds=rng.randrange(86_400))
            shown = rng.sample(runbooks, rng.choice([0, 1, 2, 3]))
            carried = {runbook.pk for runbook in shown if rng.random() < 0.3}
            solutions = [
                PresentedSolution(rank=rank, id=str(r.pk), slug=r.slug, title=r.name, carried_over=r.pk in carried)
                for rank, r in enumerate(shown, start=1)
            ]
            log = make_log(
                user=user,
                created_at=created,
                strategy=["no_solutions", "single_solution", "multiple_options"][min(len(shown), 2)],
                presented=solutions,
                source=rng.choice(["chat_page", "widget"]),
            )
            for runbook in shown:
                if rng.random() < 0.5:
                    continue
                at = created + dt.timedelta(seconds=rng.expovariate(1 / 60))
                event(log, runbook, "clicked_link", at)
                if rng.random() < 0.6:
                    at += dt.timedelta(seconds=rng.expovariate(1 / 20))
                    event(log, runbook, "viewed_detail", at)
                    if rng.random() < 0.5:
                        at += dt.timedelta(seconds=rng.expovariate(1 / 200))
                        event(log, runbook, "started_execution", at)
                        event(log, runbook, "succeeded", at + dt.timedelta(seconds=30))


@pytest.mark.parametrize("restricted", [False, True])
def test_a_range_with_partial_days_and_a_live_tail_matches_the_live_sql(user, restricted_staff, restricted):
    world = build_world(user)
    generated_world(user, [world.a, world.b, world.c, world.r])
    # Facts and rollups up to 36 h after START: two whole days rolled up, the rest facts or live.
    refresh(START + dt.timedelta(hours=36) + dt.timedelta(hours=24, minutes=5))
    visible = visible_runbook_ids_for(restricted_staff) if restricted else None
    start, end = START - dt.timedelta(days=1, hours=7), START + dt.timedelta(days=3, hours=5)
    span = rollup_span_for(start=start, end=end, visible_runbook_ids=visible)
    assert (span.first_day, span.end_day) == (
        (START - dt.timedelta(days=1)).date(),
        (START + dt.timedelta(days=1)).date(),
    )
    rolled = metric_filter(
        start=start, end=end, visible_runbook_ids=visible, facts_before=analytics_facts_settled_before(), rollup=span
    )
    live = metric_filter(start=start, end=end, visible_runbook_ids=visible)
    result = metrics(rolled)
    assert_same(result, metrics(live))
    assert result["summary"].rates.clicked > 50  # enough data for the comparison to mean something
    split = {row.carried_over: row for row in result["pair_summary"].carried_split}
    assert split[True].impressions > 20 and split[False].impressions > 50
    assert split[True].impressions + split[False].impressions == sum(
        row.impressions for row in result["pair_summary"].click_rank_histogram
    )


def test_carried_over_presentations_count_for_the_turn_that_showed_them(user):
    world = build_world(user)
    at = T0 + dt.timedelta(minutes=10)
    solutions = [
        PresentedSolution(rank=1, id=str(world.b.pk), slug="t/b", title="B", carried_over=True),
        PresentedSolution(rank=2, id=str(world.c.pk), slug="t/c", title="C"),
    ]
    log = make_log(user=user, created_at=at, strategy="multiple_options", presented=solutions)
    event(log, world.b, "clicked_link", at + dt.timedelta(seconds=3))
    refresh(END + dt.timedelta(days=3))
    live = pair_summary(metric_filter(start=START, end=END)).carried_split
    span = rollup_span_for(start=START, end=END, visible_runbook_ids=None)
    rolled = pair_summary(
        metric_filter(start=START, end=END, facts_before=analytics_facts_settled_before(), rollup=span)
    ).carried_split
    # The fixtures' 9 presentations (5 clicked) are newly retrieved; B here was carried over and clicked.
    assert [(r.carried_over, r.impressions, r.clicks) for r in rolled] == [(False, 10, 5), (True, 1, 1)]
    assert rolled == live


def test_refresh_is_incremental_and_skips_days_already_rolled_up(user):
    build_world(user)
    assert analytics_rollups_refresh(settled_before=None).days == 0
    settled = analytics_facts_refresh(now=END + dt.timedelta(days=3)).settled_before
    first = analytics_rollups_refresh(settled_before=settled)
    assert (first.audiences, first.days) == (1, 2)  # everyone; 2026-01-10 and 11 (settled before 01-12 23:55)
    assert analytics_rollups_refresh(settled_before=settled).days == 0


def test_percentile_from_buckets_follows_percentile_cont():
    # One value per bucket 4 (1.68..2 s) and 8 (2.83..4 s): the median interpolates their middles.
    counts = {4: 1, 8: 1}
    assert percentile(counts, 0.5) == pytest.approx((2 ** (3.5 / 4) + 2 ** (7.5 / 4)) / 2)
    assert percentile({}, 0.5) is None
    assert percentile({0: 3}, 0.9) == 0.5
    assert within_bucket_error(10.9, 10.0) and not within_bucket_error(12.0, 10.0)


def test_disabling_an_unrelated_runbook_keeps_a_restricted_readers_rollups(user, restricted_staff):
    world = build_world(user)
    refresh(END + dt.timedelta(days=3))
    before = rollup_span_for(start=START, end=END, visible_runbook_ids=visible_runbook_ids_for(restricted_staff))
    assert before is not None
    world.a.enabled = False  # public: the reader's restrictions are the same
    world.a.save(update_fields=["enabled"])
    visible = visible_runbook_ids_for(restricted_staff)
    after = rollup_span_for(start=START, end=END, visible_runbook_ids=visible)
    assert after == before  # still read from the rollups, not recomputed from the facts
    rolled = metric_filter(
        start=START, end=END, visible_runbook_ids=visible, facts_before=analytics_facts_settled_before(), rollup=after
    )
    assert_same(metrics(rolled), metrics(metric_filter(start=START, end=END, visible_runbook_ids=visible)))


def test_a_staff_member_allowed_every_restricted_runbook_reads_everyones_rollups(user):
    world = build_world(user)
    member = UserFactory(username="in-secret", is_staff=True)
    member.groups.add(world.r.allowed_groups.get())
    refresh(END + dt.timedelta(days=3))
    assert visible_runbook_ids_for(member) is None
    assert RollupAudience.objects.get().key == "everyone"
