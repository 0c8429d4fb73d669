"""Every metric on tests/analytics/fixtures.py, with the answer worked out by hand in each test."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics import queries
from analytics.queries import metric_filter
from tests.analytics.fixtures import END, START, build_world, make_log

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(user):
    return build_world(user)


def everything(**kwargs):
    return metric_filter(start=START, end=END, **kwargs)


def restricted(world, **kwargs):
    # A reader outside "secret": A, B, C are visible, R is not.
    return metric_filter(start=START, end=END, visible_runbook_ids=[world.a.pk, world.b.pk, world.c.pk], **kwargs)


def test_rates_for_a_reader_who_sees_everything(world):
    rates = queries.rates(everything())
    # L1..L6 in range; L4 presented nothing; L1, L2, L5 clicked (L6's click is 25 h late).
    assert (rates.audit_logs, rates.recommended, rates.clicked) == (6, 5, 3)
    assert rates.recommendation_rate == pytest.approx(5 / 6)
    assert rates.click_through_rate == pytest.approx(3 / 5)
    # First clicks: L1 rank 1, L2 rank 2 (B before A), L5 rank 1 (R).
    assert rates.first_choice_accuracy == pytest.approx(2 / 3)
    assert rates.mean_reciprocal_rank == pytest.approx((1 + 1 / 2 + 1) / 3)
    # L2 (B, A) and L5 (R, A) clicked two distinct solutions.
    assert rates.multi_click_rate == pytest.approx(2 / 3)


def test_rates_ignore_runbooks_the_reader_may_not_see(world):
    rates = queries.rates(restricted(world))
    # L5 keeps A (rank 2, clicked after 40 min); R and its click vanish. Audit logs are all still counted.
    assert (rates.audit_logs, rates.recommended, rates.clicked) == (6, 5, 3)
    assert rates.first_choice_accuracy == pytest.approx(1 / 3)
    assert rates.mean_reciprocal_rank == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert rates.multi_click_rate == pytest.approx(1 / 3)


def test_rates_of_an_empty_range_are_null_not_zero(world):
    rates = queries.rates(metric_filter(start=START - dt.timedelta(days=9), end=START - dt.timedelta(days=8)))
    assert rates.audit_logs == 0
    assert rates.recommendation_rate is None
    assert rates.click_through_rate is None
    assert rates.first_choice_accuracy is None
    assert rates.mean_reciprocal_rank is None
    assert rates.multi_click_rate is None


def test_rates_with_recommendations_but_no_clicks_have_null_click_ratios(user):
    from tests.factories import RunbookFactory

    make_log(
        user=user, created_at=START + dt.timedelta(hours=1), strategy="single_solution", presented=[RunbookFactory()]
    )
    rates = queries.rates(everything())
    assert rates.click_through_rate == 0.0
    assert rates.first_choice_accuracy is None
    assert rates.multi_click_rate is None


def test_filters_apply_to_the_audit_log(world):
    widget = queries.rates(everything(source="widget"))
    assert (widget.audit_logs, widget.recommended, widget.clicked) == (1, 1, 1)
    single = queries.rates(everything(strategy="single_solution"))
    assert (single.audit_logs, single.recommended, single.clicked) == (2, 2, 1)  # L1, L6
    treatment = queries.rates(everything(experiment="exp1", variant="treatment"))
    assert (treatment.audit_logs, treatment.first_click_rank1) == (1, 0)


def test_abandon_rate(world):
    now = END + dt.timedelta(days=1)
    everyone = queries.abandon_rate(everything(), now=now)
    # Recommended and old enough: L1, L2, L3, L5, L6; no click within 30 min: L3, L6.
    assert (everyone.eligible, everyone.abandoned) == (5, 2)
    assert everyone.abandon_rate == pytest.approx(2 / 5)
    # Without R, L5's only click is after 40 min: abandoned too.
    assert queries.abandon_rate(restricted(world), now=now).abandon_rate == pytest.approx(3 / 5)


def test_abandon_rate_counts_only_logs_at_least_30_minutes_old(world):
    # At 08:20 only L1 (08:00) exists and is 20 min old: nothing eligible yet.
    result = queries.abandon_rate(everything(), now=dt.datetime(2026, 1, 10, 8, 20, tzinfo=dt.UTC))
    assert (result.eligible, result.abandon_rate) == (0, None)


def test_time_to_decision(world):
    rows = {row.strategy: row for row in queries.time_to_decision(everything())}
    # First clicks after 10 s (L1), 30 s (L2), 5 s (L5): median 10; p90 = 10 + 0.8 * (30 - 10) = 26.
    assert rows[""].clicked == 3
    assert rows[""].median_seconds == pytest.approx(10)
    assert rows[""].p90_seconds == pytest.approx(26)
    assert rows["single_solution"].median_seconds == pytest.approx(10)
    assert rows["multiple_options"].p90_seconds == pytest.approx(30)
    assert rows["primary_plus_one"].median_seconds == pytest.approx(5)
    assert set(rows) == {"", "single_solution", "multiple_options", "primary_plus_one"}


def test_time_to_decision_empty_range_has_an_overall_row_of_nulls(db):
    (row,) = queries.time_to_decision(everything())
    assert (row.strategy, row.clicked, row.median_seconds, row.p90_seconds) == ("", 0, None, None)


def test_top_runbooks(world):
    rows = [
        (r.slug, r.impressions, r.clicks, r.impression_ctr, r.mean_click_rank)
        for r in queries.top_runbooks(everything())
    ]
    assert rows == [
        ("t/a", 3, 3, 1.0, pytest.approx(4 / 3)),  # L1 r1, L2 r1, L5 r2: all clicked
        ("t/c", 3, 0, 0.0, None),  # L2, L3, L6; L6's click is too late
        ("t/b", 2, 1, 0.5, 2.0),  # L2 (clicked at rank 2), L3
        ("t/r", 1, 1, 1.0, 1.0),
    ]
    assert [r.slug for r in queries.top_runbooks(restricted(world))] == ["t/a", "t/c", "t/b"]
    assert [r.slug for r in queries.top_runbooks(everything(), limit=1)] == ["t/a"]


def test_strategy_distribution(world):
    rows = [
        (r.strategy, r.audit_logs, r.recommended, r.clicked, r.click_through_rate)
        for r in queries.strategy_distribution(everything())
    ]
    assert rows == [
        ("multiple_options", 2, 2, 1, 0.5),
        ("single_solution", 2, 2, 1, 0.5),
        ("no_solutions", 1, 0, 0, None),
        ("primary_plus_one", 1, 1, 1, 1.0),
    ]


def test_click_rank_histogram(world):
    rows = [(r.rank, r.impressions, r.clicks) for r in queries.click_rank_histogram(everything())]
    # rank 1: L1 A, L2 A, L3 B, L5 R, L6 C (clicked: L1, L2, L5); rank 2: L2 B, L3 C, L5 A; rank 3: L2 C.
    assert rows == [(1, 5, 3), (2, 3, 2), (3, 1, 0)]


def test_experiment_variant_counts(world):
    rows = [
        (r.experiment, r.variant, r.audit_logs, r.recommended, r.clicked, r.first_click_rank1)
        for r in queries.experiment_variant_counts(everything())
    ]
    assert rows == [("exp1", "control", 1, 1, 1, 1), ("exp1", "treatment", 1, 1, 1, 0)]


def test_funnel(world):
    steps = {s.step: s for s in queries.funnel(everything())}
    # 9 presentations; clicked: L1 A, L2 B, L2 A, L5 R, L5 A. Viewed after the click: only L1 A (L2 A's
    # view came before its click). L3 B was started without a click: not in the funnel.
    assert [s.count for s in steps.values()] == [9, 5, 1, 1, 1]
    assert steps["clicked_link"].step_conversion == pytest.approx(5 / 9)
    assert steps["viewed_detail"].step_conversion == pytest.approx(1 / 5)
    assert steps["succeeded"].step_conversion == 1.0
    assert steps["succeeded"].overall_conversion == pytest.approx(1 / 9)
    assert steps["presented"].step_conversion is None
    # Click delays 5, 10, 30, 50, 2400 s: median 30. Then 10 s, 40 s, 60 s.
    assert steps["clicked_link"].median_seconds_from_previous == pytest.approx(30)
    assert steps["viewed_detail"].median_seconds_from_previous == pytest.approx(10)
    assert steps["started_execution"].median_seconds_from_previous == pytest.approx(40)
    assert steps["succeeded"].median_seconds_from_previous == pytest.approx(60)


def test_funnel_restricted_and_empty(world):
    assert [s.count for s in queries.funnel(restricted(world))] == [8, 4, 1, 1, 1]
    empty = queries.funnel(everything(source="alert_page"))
    assert [s.count for s in empty] == [0, 0, 0, 0, 0]
    assert all(s.step_conversion is None and s.median_seconds_from_previous is None for s in empty)


def test_daily_trend(world):
    (day,) = queries.daily_trend(everything(), tz_name="UTC")
    assert (day.day, day.queries, day.recommendations, day.clicks) == (dt.date(2026, 1, 10), 6, 5, 3)
    assert day.click_through_rate == pytest.approx(0.6)


def test_daily_trend_uses_the_configured_time_zone_and_fills_empty_days(settings, user):
    settings.TIME_ZONE = "Europe/Berlin"  # UTC+1 in January
    make_log(user=user, created_at=dt.datetime(2026, 1, 10, 22, 30, tzinfo=dt.UTC), strategy="no_solutions")
    make_log(user=user, created_at=dt.datetime(2026, 1, 10, 23, 30, tzinfo=dt.UTC), strategy="no_solutions")
    berlin = dt.timezone(dt.timedelta(hours=1))
    rows = queries.daily_trend(
        metric_filter(start=dt.datetime(2026, 1, 10, tzinfo=berlin), end=dt.datetime(2026, 1, 13, tzinfo=berlin))
    )
    # 23:30 Berlin on the 10th, 00:30 Berlin on the 11th; the 12th has no data.
    assert [(r.day.isoformat(), r.queries, r.click_through_rate) for r in rows] == [
        ("2026-01-10", 1, None),
        ("2026-01-11", 1, None),
        ("2026-01-12", 0, None),
    ]


def test_feedback_rank_counts_only_from_readers_allowed_to_see_the_runbook(world):
    from tests.analytics.fixtures import event
    from tests.factories import GroupFactory, UserFactory

    # alice (the fixtures' user) is not in "secret", so L5's presentation and click of R do not count;
    # a member of "secret" seeing R does.
    member = UserFactory(username="member", groups=[GroupFactory(name="secret")])
    log = make_log(
        user=member, created_at=START + dt.timedelta(hours=10), strategy="single_solution", presented=[world.r]
    )
    event(log, world.r, "clicked_link", START + dt.timedelta(hours=10, seconds=3))
    counts = {
        (c.runbook_id, c.rank): (c.impressions, c.clicks) for c in queries.feedback_rank_counts(since=START, until=END)
    }
    assert [key for key in counts if key[0] == world.r.pk] == [(world.r.pk, 1)]
    assert counts[(world.r.pk, 1)] == (1, 1)
    assert counts[(world.a.pk, 1)] == (2, 2)  # L1, L2
    assert counts[(world.a.pk, 2)] == (1, 1)  # L5
    assert counts[(world.c.pk, 1)] == (1, 0)  # L6: click 25 h late
