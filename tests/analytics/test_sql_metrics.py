"""The dashboard's statements (analytics/sql/metrics.py) on tests/analytics/fixtures.py, with every answer
worked out by hand in the test."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.sql.common import metric_filter
from analytics.sql.funnel import funnel
from analytics.sql.metrics import log_summary, pair_summary
from tests.analytics.fixtures import END, START, T0, build_world, event, make_log
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

LATER = END + dt.timedelta(days=1)  # every log of the range is old enough for the abandon rate


@pytest.fixture
def world(user):
    return build_world(user)


def everything(**kwargs):
    return metric_filter(start=START, end=END, **kwargs)


def restricted(world, **kwargs):
    # A reader outside "secret": A, B, C are visible, R is not.
    return metric_filter(start=START, end=END, visible_runbook_ids=[world.a.pk, world.b.pk, world.c.pk], **kwargs)


def test_rates_for_a_reader_who_sees_everything(world):
    rates = log_summary(everything(), now=LATER).rates
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
    rates = log_summary(restricted(world), now=LATER).rates
    # L5 keeps A (rank 2, clicked after 40 min); R and its click vanish. Audit logs are all still counted.
    assert (rates.audit_logs, rates.recommended, rates.clicked) == (6, 5, 3)
    assert rates.first_choice_accuracy == pytest.approx(1 / 3)
    assert rates.mean_reciprocal_rank == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert rates.multi_click_rate == pytest.approx(1 / 3)


def test_rates_of_an_empty_range_are_null_not_zero(world):
    empty = metric_filter(start=START - dt.timedelta(days=9), end=START - dt.timedelta(days=8))
    rates = log_summary(empty, now=LATER).rates
    assert rates.audit_logs == 0
    assert rates.recommendation_rate is None
    assert rates.click_through_rate is None
    assert rates.first_choice_accuracy is None
    assert rates.mean_reciprocal_rank is None
    assert rates.multi_click_rate is None


def test_rates_with_recommendations_but_no_clicks_have_null_click_ratios(user):
    make_log(
        user=user, created_at=START + dt.timedelta(hours=1), strategy="single_solution", presented=[RunbookFactory()]
    )
    rates = log_summary(everything(), now=LATER).rates
    assert rates.click_through_rate == 0.0
    assert rates.first_choice_accuracy is None
    assert rates.multi_click_rate is None


def test_filters_apply_to_the_audit_log(world):
    widget = log_summary(everything(source="widget"), now=LATER).rates
    assert (widget.audit_logs, widget.recommended, widget.clicked) == (1, 1, 1)
    single = log_summary(everything(strategy="single_solution"), now=LATER).rates
    assert (single.audit_logs, single.recommended, single.clicked) == (2, 2, 1)  # L1, L6
    treatment = log_summary(everything(experiment="exp1", variant="treatment"), now=LATER).rates
    assert (treatment.audit_logs, treatment.first_click_rank1) == (1, 0)


def test_abandon_rate(world):
    now = END + dt.timedelta(days=1)
    everyone = log_summary(everything(), now=now).abandon
    # Recommended and old enough: L1, L2, L3, L5, L6; no click within 30 min: L3, L6.
    assert (everyone.eligible, everyone.abandoned) == (5, 2)
    assert everyone.abandon_rate == pytest.approx(2 / 5)
    # Without R, L5's only click is after 40 min: abandoned too.
    assert log_summary(restricted(world), now=now).abandon.abandon_rate == pytest.approx(3 / 5)


def test_abandon_rate_counts_only_logs_at_least_30_minutes_old(world):
    # At 08:20 only L1 (08:00) exists and is 20 min old: nothing eligible yet.
    result = log_summary(everything(), now=dt.datetime(2026, 1, 10, 8, 20, tzinfo=dt.UTC)).abandon
    assert (result.eligible, result.abandon_rate) == (0, None)
    # At 09:20 L1 is old enough (clicked after 10 s); L2 (09:00) is not yet.
    result = log_summary(everything(), now=T0 + dt.timedelta(hours=1, minutes=20)).abandon
    assert (result.eligible, result.abandoned, result.abandon_rate) == (1, 0, 0.0)


def test_time_to_decision(world):
    rows = {row.strategy: row for row in log_summary(everything(), now=LATER).time_to_decision}
    # First clicks after 10 s (L1), 30 s (L2), 5 s (L5): median 10; p90 = 10 + 0.8 * (30 - 10) = 26.
    assert rows[""].clicked == 3
    assert rows[""].median_seconds == pytest.approx(10)
    assert rows[""].p90_seconds == pytest.approx(26)
    assert rows["single_solution"].median_seconds == pytest.approx(10)
    assert rows["multiple_options"].p90_seconds == pytest.approx(30)
    assert rows["primary_plus_one"].median_seconds == pytest.approx(5)
    assert set(rows) == {"", "single_solution", "multiple_options", "primary_plus_one"}


def test_time_to_decision_for_a_restricted_reader(world):
    overall, *by_strategy = log_summary(restricted(world), now=LATER).time_to_decision
    # Without R, L5's first click is A after 40 min: 10, 30, 2400 s; p90 = 30 + 0.8 * (2400 - 30) = 1926.
    assert (overall.strategy, overall.clicked) == ("", 3)
    assert (overall.median_seconds, overall.p90_seconds) == (pytest.approx(30), pytest.approx(1926))
    assert [(row.strategy, row.median_seconds) for row in by_strategy] == [
        ("multiple_options", pytest.approx(30)),
        ("primary_plus_one", pytest.approx(2400)),
        ("single_solution", pytest.approx(10)),
    ]


def test_time_to_decision_empty_range_has_an_overall_row_of_nulls(db):
    (row,) = log_summary(everything(), now=LATER).time_to_decision
    assert (row.strategy, row.clicked, row.median_seconds, row.p90_seconds) == ("", 0, None, None)


def test_top_runbooks(world):
    rows = [
        (r.slug, r.impressions, r.clicks, r.impression_ctr, r.mean_click_rank)
        for r in pair_summary(everything()).top_runbooks
    ]
    assert rows == [
        ("t/a", 3, 3, 1.0, pytest.approx(4 / 3)),  # L1 r1, L2 r1, L5 r2: all clicked
        ("t/c", 3, 0, 0.0, None),  # L2, L3, L6; L6's click is too late
        ("t/b", 2, 1, 0.5, 2.0),  # L2 (clicked at rank 2), L3
        ("t/r", 1, 1, 1.0, 1.0),
    ]
    assert [r.slug for r in pair_summary(restricted(world)).top_runbooks] == ["t/a", "t/c", "t/b"]
    assert [r.slug for r in pair_summary(everything(), limit=1).top_runbooks] == ["t/a"]
    assert [r.slug for r in pair_summary(restricted(world), limit=2).top_runbooks] == ["t/a", "t/c"]


def test_top_runbooks_with_equal_impressions_put_the_more_clicked_first(user):
    first, second = RunbookFactory(slug="t/first"), RunbookFactory(slug="t/second")
    make_log(user=user, created_at=T0, strategy="single_solution", presented=[first])
    log = make_log(user=user, created_at=T0 + dt.timedelta(hours=1), strategy="single_solution", presented=[second])
    event(log, second, "clicked_link", T0 + dt.timedelta(hours=1, seconds=5))
    rows = [(r.slug, r.impressions, r.clicks) for r in pair_summary(everything()).top_runbooks]
    assert rows == [("t/second", 1, 1), ("t/first", 1, 0)]


def test_strategy_distribution(world):
    rows = [
        (r.strategy, r.audit_logs, r.recommended, r.clicked, r.click_through_rate)
        for r in log_summary(everything(), now=LATER).strategy_distribution
    ]
    assert rows == [
        ("multiple_options", 2, 2, 1, 0.5),
        ("single_solution", 2, 2, 1, 0.5),
        ("no_solutions", 1, 0, 0, None),
        ("primary_plus_one", 1, 1, 1, 1.0),
    ]


def test_click_rank_histogram(world):
    rows = [(r.rank, r.impressions, r.clicks) for r in pair_summary(everything()).click_rank_histogram]
    # rank 1: L1 A, L2 A, L3 B, L5 R, L6 C (clicked: L1, L2, L5); rank 2: L2 B, L3 C, L5 A; rank 3: L2 C.
    assert rows == [(1, 5, 3), (2, 3, 2), (3, 1, 0)]
    # The limit cuts the runbooks only; without R, rank 1 loses L5's presentation and click.
    rows = [(r.rank, r.impressions, r.clicks) for r in pair_summary(restricted(world), limit=1).click_rank_histogram]
    assert rows == [(1, 4, 2), (2, 3, 2), (3, 1, 0)]


def test_experiment_variant_counts(world):
    rows = [
        (r.experiment, r.variant, r.audit_logs, r.recommended, r.clicked, r.first_click_rank1)
        for r in log_summary(everything(), now=LATER).experiment_variant_counts
    ]
    assert rows == [("exp1", "control", 1, 1, 1, 1), ("exp1", "treatment", 1, 1, 1, 0)]


# Per filter, every part of both summaries (restricted or not: R is only in L5, which both filters drop).
# multiple_options: L2 (A1 B2 C3, first click B at 30 s, then A) and L3 (B1 C2, never clicked).
# exp1: L1 (A1 clicked at 10 s) and L2.
SUMMARIES_BY_FILTER = {
    "multiple_options": {
        "rates": (2, 2, 1, 0, 1, 0.5),
        "abandon": (2, 1),
        "time_to_decision": [("", 1, 30, 30), ("multiple_options", 1, 30, 30)],
        "strategies": [("multiple_options", 2, 2, 1, 0.5)],
        "variants": [("exp1", "treatment", 1, 1, 1, 0)],
        "trend": [(dt.date(2026, 1, 10), 2, 2, 1)],
        "top_two": [("t/b", 2, 1), ("t/c", 2, 0)],
        "ranks": [(1, 2, 1), (2, 2, 1), (3, 1, 0)],
    },
    "exp1": {
        "rates": (2, 2, 2, 1, 1, 1.5),
        "abandon": (2, 0),
        # 10 and 30 s: median 20, p90 = 10 + 0.9 * 20 = 28.
        "time_to_decision": [("", 2, 20, 28), ("multiple_options", 1, 30, 30), ("single_solution", 1, 10, 10)],
        "strategies": [("multiple_options", 1, 1, 1, 1.0), ("single_solution", 1, 1, 1, 1.0)],
        "variants": [("exp1", "control", 1, 1, 1, 1), ("exp1", "treatment", 1, 1, 1, 0)],
        "trend": [(dt.date(2026, 1, 10), 2, 2, 2)],
        "top_two": [("t/a", 2, 2), ("t/b", 1, 1)],
        "ranks": [(1, 2, 2), (2, 1, 1), (3, 1, 0)],
    },
}


@pytest.mark.parametrize("is_restricted", [False, True])
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"strategy": "multiple_options"}, SUMMARIES_BY_FILTER["multiple_options"]),
        ({"experiment": "exp1"}, SUMMARIES_BY_FILTER["exp1"]),
    ],
)
def test_summaries_under_a_filter(world, is_restricted, options, expected):
    filters = restricted(world, **options) if is_restricted else everything(**options)
    logs = log_summary(filters, now=LATER, tz_name="UTC")
    pairs = pair_summary(filters, limit=2)
    rates = logs.rates
    assert (
        rates.audit_logs,
        rates.recommended,
        rates.clicked,
        rates.first_click_rank1,
        rates.multi_clicked,
        rates.reciprocal_rank_sum,
    ) == pytest.approx(expected["rates"])
    assert (logs.abandon.eligible, logs.abandon.abandoned) == expected["abandon"]
    assert [(t.strategy, t.clicked, t.median_seconds, t.p90_seconds) for t in logs.time_to_decision] == [
        (strategy, clicked, pytest.approx(median), pytest.approx(p90))
        for strategy, clicked, median, p90 in expected["time_to_decision"]
    ]
    assert [
        (s.strategy, s.audit_logs, s.recommended, s.clicked, s.click_through_rate) for s in logs.strategy_distribution
    ] == expected["strategies"]
    assert [
        (v.experiment, v.variant, v.audit_logs, v.recommended, v.clicked, v.first_click_rank1)
        for v in logs.experiment_variant_counts
    ] == expected["variants"]
    assert [(d.day, d.queries, d.recommendations, d.clicks) for d in logs.daily_trend] == expected["trend"]
    assert [(r.slug, r.impressions, r.clicks) for r in pairs.top_runbooks] == expected["top_two"]
    assert [(r.rank, r.impressions, r.clicks) for r in pairs.click_rank_histogram] == expected["ranks"]


def _day(day: int, queries: int = 0, recommendations: int = 0, clicks: int = 0) -> tuple:
    return dt.date(2026, 1, day), queries, recommendations, clicks


@pytest.mark.parametrize(
    ("tz_name", "trend"),
    [
        # 2026-01-08 to 2026-01-12 UTC; L7 (2026-01-11 01:00 UTC) is a day of its own.
        ("UTC", [_day(8), _day(9), _day(10, 6, 5, 3), _day(11, 1, 1, 1), _day(12)]),
        # New York is UTC-5 in January: the range is 2026-01-07 19:00 to 2026-01-12 19:00 local, and
        # L7 (20:00 local on the 10th) falls on the same day as L1..L6.
        ("America/New_York", [_day(7), _day(8), _day(9), _day(10, 7, 6, 4), _day(11), _day(12)]),
    ],
)
def test_log_summary_over_days_without_data(world, tz_name, trend):
    filters = metric_filter(start=START - dt.timedelta(days=2), end=START + dt.timedelta(days=3))
    logs = log_summary(filters, now=LATER, tz_name=tz_name)
    assert [(d.day, d.queries, d.recommendations, d.clicks) for d in logs.daily_trend] == trend
    # L7 (single_solution, A clicked after 1 s) joins the range: 4 first clicks, 3 at rank 1.
    rates = logs.rates
    assert (rates.audit_logs, rates.recommended, rates.clicked, rates.first_click_rank1) == (7, 6, 4, 3)
    assert rates.mean_reciprocal_rank == pytest.approx((1 + 1 / 2 + 1 + 1) / 4)
    # First clicks 1, 5, 10, 30 s: median 7.5, p90 = 10 + 0.7 * 20 = 24.
    overall = logs.time_to_decision[0]
    assert (overall.median_seconds, overall.p90_seconds) == (pytest.approx(7.5), pytest.approx(24))
    assert [(s.strategy, s.audit_logs) for s in logs.strategy_distribution] == [
        ("single_solution", 3),
        ("multiple_options", 2),
        ("no_solutions", 1),
        ("primary_plus_one", 1),
    ]


def test_funnel(world):
    steps = {s.step: s for s in funnel(everything())}
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
    assert [s.count for s in funnel(restricted(world))] == [8, 4, 1, 1, 1]
    empty = funnel(everything(source="alert_page"))
    assert [s.count for s in empty] == [0, 0, 0, 0, 0]
    assert all(s.step_conversion is None and s.median_seconds_from_previous is None for s in empty)


def test_daily_trend(world):
    (day,) = log_summary(everything(), now=LATER, tz_name="UTC").daily_trend
    assert (day.day, day.queries, day.recommendations, day.clicks) == (dt.date(2026, 1, 10), 6, 5, 3)
    assert day.click_through_rate == pytest.approx(0.6)


def test_daily_trend_uses_the_configured_time_zone_and_fills_empty_days(settings, user):
    settings.TIME_ZONE = "Europe/Berlin"  # UTC+1 in January
    make_log(user=user, created_at=dt.datetime(2026, 1, 10, 22, 30, tzinfo=dt.UTC), strategy="no_solutions")
    make_log(user=user, created_at=dt.datetime(2026, 1, 10, 23, 30, tzinfo=dt.UTC), strategy="no_solutions")
    berlin = dt.timezone(dt.timedelta(hours=1))
    rows = log_summary(
        metric_filter(start=dt.datetime(2026, 1, 10, tzinfo=berlin), end=dt.datetime(2026, 1, 13, tzinfo=berlin)),
        now=LATER,
    ).daily_trend
    # 23:30 Berlin on the 10th, 00:30 Berlin on the 11th; the 12th has no data.
    assert [(r.day.isoformat(), r.queries, r.click_through_rate) for r in rows] == [
        ("2026-01-10", 1, None),
        ("2026-01-11", 1, None),
        ("2026-01-12", 0, None),
    ]
