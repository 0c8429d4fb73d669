"""The per-source split and the alerts' outcomes (analytics/sql/sources.py) on hand-built data, every figure
worked out here; then the same through the rollups, and on the dashboard, its API and CSV.

Range 2026-01-10 (UTC), runbooks A, B, C for everyone, R restricted to "secret". T0 = 08:00.

Alert presentations carry the alert's start in their page context, as the alerts page writes them.

| log | source    | presented | clicks (after created_at) | alert started | resolved     |
| C1  | chat_page | A1        | A +10 s                   |               |              |
| C2  | chat_page | A1 B2     | B +30 s                   |               |              |
| C3  | chat_page | -         | -                         |               |              |
| W1  | widget    | A1        | -                         |               |              |
| P1  | alert     | A1 B2     | A +2 min                  | T0 - 10 min   | T0 + 30 min  |
| P2  | alert     | R1 A2     | R +1 min, A +5 min        | T0 - 20 min   | T0 + 2 h     |
| P3  | alert     | B1        | -                         | T0 - 5 min    | -            |
| P4  | alert     | C1        | C +1 min                  | T0 - 5 min    | -            |
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from alerts.outcomes import alert_resolutions_record
from analytics.histograms import within_bucket_error
from analytics.services.facts import analytics_facts_refresh, analytics_facts_settled_before
from analytics.services.rollups import analytics_rollups_refresh, rollup_span_for, visible_runbook_ids_for
from analytics.sql.common import metric_filter
from analytics.sql.sources import AlertOutcomes, alert_outcomes, source_summary
from tests.alerts.outcome_rows import alert_presentation, recommended_alert
from tests.analytics.fixtures import END, START, T0, event, make_log
from tests.factories import GroupFactory, UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

S = dt.timedelta(seconds=1)
MIN = dt.timedelta(minutes=1)


@pytest.fixture
def world(user):
    secret = GroupFactory(name="secret")
    a, b, c = (RunbookFactory(slug=f"t/{name}", name=name.upper()) for name in "abc")
    r = RunbookFactory(slug="t/r", name="R", allowed_groups=[secret])
    c1 = make_log(user=user, created_at=T0, strategy="single_solution", presented=[a])
    event(c1, a, "clicked_link", T0 + 10 * S)
    c2 = make_log(user=user, created_at=T0 + MIN, strategy="multiple_options", presented=[a, b])
    event(c2, b, "clicked_link", T0 + MIN + 30 * S)
    make_log(user=user, created_at=T0 + 2 * MIN, strategy="no_solutions")
    make_log(user=user, created_at=T0 + 3 * MIN, strategy="single_solution", presented=[a], source="widget")

    def shown(runbooks, *, started_before, resolved_after=None):
        alert = recommended_alert(runbooks=runbooks, starts_at=T0 - started_before)
        presentation = alert_presentation(alert=alert, user=user, runbooks=runbooks, created_at=T0)
        if resolved_after is not None:
            alert_resolutions_record(alert_ids=[alert.pk], resolved_at=T0 + resolved_after)
        return presentation.audit_log

    p1 = shown([a, b], started_before=10 * MIN, resolved_after=30 * MIN)
    event(p1, a, "clicked_link", T0 + 2 * MIN)
    p2 = shown([r, a], started_before=20 * MIN, resolved_after=dt.timedelta(hours=2))
    event(p2, r, "clicked_link", T0 + MIN)
    event(p2, a, "clicked_link", T0 + 5 * MIN)
    shown([b], started_before=5 * MIN)
    p4 = shown([c], started_before=5 * MIN)
    event(p4, c, "clicked_link", T0 + MIN)
    return {"a": a, "b": b, "c": c, "r": r}


def everything(**kwargs):
    return metric_filter(start=START, end=END, **kwargs)


def restricted(world, **kwargs):
    return everything(visible_runbook_ids=[world[name].pk for name in "abc"], **kwargs)


def by_source(filters):
    return {row.source: row for row in source_summary(filters)}


def test_rates_and_time_to_decision_per_source(world):
    rows = source_summary(everything())
    assert [row.source for row in rows] == ["alert", "chat_page", "widget"]  # most answers first
    alert, chat, widget = rows
    assert (alert.audit_logs, alert.recommended, alert.clicked, alert.first_click_rank1) == (4, 4, 3, 3)
    assert (alert.recommendation_rate, alert.click_through_rate, alert.first_choice_accuracy) == (1.0, 0.75, 1.0)
    # First clicks after the presentation: P1 120 s, P2 60 s (R), P4 60 s.
    assert alert.decided == 3
    assert alert.decision_median_seconds == pytest.approx(60)
    assert alert.decision_p90_seconds == pytest.approx(108)  # 60 + 0.8 * 60
    assert (chat.audit_logs, chat.recommended, chat.clicked, chat.first_click_rank1) == (3, 2, 2, 1)
    assert chat.recommendation_rate == pytest.approx(2 / 3)
    assert (chat.click_through_rate, chat.first_choice_accuracy) == (1.0, 0.5)
    assert (chat.decision_median_seconds, chat.decision_p90_seconds) == (pytest.approx(20), pytest.approx(28))
    assert (widget.audit_logs, widget.recommended, widget.clicked) == (1, 1, 0)
    assert (widget.click_through_rate, widget.first_choice_accuracy, widget.decided) == (0.0, None, 0)
    assert widget.decision_median_seconds is None


def test_a_restricted_reader_counts_only_the_runbooks_they_may_see(world):
    alert = by_source(restricted(world))["alert"]
    # P2's click on R vanishes: its first click is A at rank 2 after 5 min.
    assert (alert.audit_logs, alert.recommended, alert.clicked, alert.first_click_rank1) == (4, 4, 3, 2)
    assert alert.first_choice_accuracy == pytest.approx(2 / 3)
    assert alert.decision_median_seconds == pytest.approx(120)


def test_a_source_filter_keeps_that_source(world):
    assert list(by_source(everything(source="alert"))) == ["alert"]
    assert alert_outcomes(everything(source="widget")) == AlertOutcomes(0, 0, 0, 0, 0, None, None, 0, None, None)


def test_alert_outcomes_time_the_start_the_click_and_the_resolution(world):
    outcomes = alert_outcomes(everything())
    assert (outcomes.presentations, outcomes.recommended, outcomes.clicked, outcomes.resolved) == (4, 4, 3, 2)
    # Start to first click: P1 10 + 2 = 12 min, P2 20 + 1 = 21 min, P4 5 + 1 = 6 min (not resolved: the
    # start comes from the presentation's page context).
    assert outcomes.start_to_click_count == 3
    assert outcomes.start_to_click_median_seconds == pytest.approx(720)
    assert outcomes.start_to_click_p90_seconds == pytest.approx(720 + 0.8 * 540)
    # First click to resolved: P1 30 - 2 = 28 min, P2 2 h - 1 min.
    assert outcomes.click_to_resolved_count == 2
    assert outcomes.click_to_resolved_median_seconds == pytest.approx((1680 + 7140) / 2)
    assert outcomes.click_to_resolved_p90_seconds == pytest.approx(1680 + 0.9 * 5460)


def test_alert_outcomes_for_a_restricted_reader(world):
    outcomes = alert_outcomes(restricted(world))
    # P2's first visible click is A after 5 min: 25 min from the start, 1 h 55 min before the resolution.
    assert (outcomes.clicked, outcomes.resolved) == (3, 2)
    assert outcomes.start_to_click_p90_seconds == pytest.approx(720 + 0.8 * 780)  # 360, 720, 1500
    assert outcomes.click_to_resolved_median_seconds == pytest.approx((1680 + 6900) / 2)


def test_without_the_page_context_the_start_comes_from_the_resolution(user):
    a = RunbookFactory()
    resolved, firing = (recommended_alert(runbooks=[a], starts_at=T0 - 10 * MIN) for _ in range(2))
    for alert in (resolved, firing):
        log = alert_presentation(alert=alert, user=user, runbooks=[a], created_at=T0, with_context=False).audit_log
        event(log, a, "clicked_link", T0 + MIN)
    alert_resolutions_record(alert_ids=[resolved.pk], resolved_at=T0 + 20 * MIN)
    outcomes = alert_outcomes(everything())
    # Only the resolved alert's start is known: 10 + 1 min; then 19 min to the resolution.
    assert (outcomes.clicked, outcomes.start_to_click_count, outcomes.click_to_resolved_count) == (2, 1, 1)
    assert outcomes.start_to_click_median_seconds == pytest.approx(660)
    assert outcomes.click_to_resolved_median_seconds == pytest.approx(1140)


def test_a_resolution_before_the_click_is_not_a_click_to_resolved_time(user):
    a = RunbookFactory()
    alert = recommended_alert(runbooks=[a], starts_at=T0 - 10 * MIN)
    log = alert_presentation(alert=alert, user=user, runbooks=[a], created_at=T0).audit_log
    alert_resolutions_record(alert_ids=[alert.pk], resolved_at=T0 + MIN)
    event(log, a, "clicked_link", T0 + 2 * MIN)
    outcomes = alert_outcomes(everything())
    assert (outcomes.resolved, outcomes.start_to_click_count, outcomes.click_to_resolved_count) == (1, 1, 0)
    assert outcomes.start_to_click_median_seconds == pytest.approx(720)


@pytest.mark.parametrize("reader", ["everyone", "restricted"])
def test_rolled_up_days_give_the_same_split(world, reader):
    staff = UserFactory(username="restricted-staff", is_staff=True)  # before the refresh: gets an audience
    report = analytics_facts_refresh(now=END + dt.timedelta(days=3))
    analytics_rollups_refresh(settled_before=report.settled_before)
    visible = visible_runbook_ids_for(staff) if reader == "restricted" else None
    span = rollup_span_for(start=START, end=END, visible_runbook_ids=visible)
    assert span is not None
    rolled = metric_filter(
        start=START, end=END, visible_runbook_ids=visible, facts_before=analytics_facts_settled_before(), rollup=span
    )
    live = metric_filter(start=START, end=END, visible_runbook_ids=visible)
    counts = ("audit_logs", "recommended", "clicked", "first_click_rank1", "decided")
    rolled_rows, live_rows = source_summary(rolled), source_summary(live)
    assert [[getattr(r, key) for key in counts] for r in rolled_rows] == [
        [getattr(r, key) for key in counts] for r in live_rows
    ]
    for estimate, exact in zip(rolled_rows, live_rows, strict=True):
        for x, y in (
            (estimate.decision_median_seconds, exact.decision_median_seconds),
            (estimate.decision_p90_seconds, exact.decision_p90_seconds),
        ):
            assert (x is None) == (y is None)
            assert y is None or within_bucket_error(x, y), (estimate.source, x, y)
    assert alert_outcomes(rolled) == alert_outcomes(live)


RANGE = {"start": "2026-01-10", "end": "2026-01-10"}


def test_the_dashboard_shows_alerts_and_chat_side_by_side(client, staff_user, world, settings):
    settings.TIME_ZONE = "UTC"
    client.force_login(staff_user)
    page = client.get("/admin/analytics/dashboard/", RANGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "By source: alerts and chat side by side" in html
    assert '<th scope="row">Alerts</th><td>4</td><td>100%</td><td>75%</td><td>100%</td><td>1 min</td>' in html
    assert "<td>12 min</td><td>1 h 13 min</td>" in html  # 720 s; 4410 s
    assert '<th scope="row">Chat page</th><td>3</td><td>66.7%</td><td>100%</td><td>50%</td><td>20 s</td>' in html
    assert "Alerts: from the start to the first click, and from the click to resolved" in html
    assert '<th scope="row">Alert start to first click</th><td>3</td><td>12 min</td><td>19 min 12 s</td>' in html


def test_the_api_and_the_csv_carry_the_raw_numbers(client, staff_user, world, settings):
    settings.TIME_ZONE = "UTC"
    client.force_login(staff_user)
    body = client.get("/api/analytics/metrics", RANGE).json()
    assert [(row["source"], row["audit_logs"]) for row in body["by_source"]] == [
        ("alert", 4),
        ("chat_page", 3),
        ("widget", 1),
    ]
    assert body["by_source"][0]["first_choice_accuracy"] == 1.0
    assert body["alert_outcomes"]["start_to_click_median_seconds"] == pytest.approx(720)
    assert body["alert_outcomes"]["click_to_resolved_median_seconds"] == pytest.approx(4410)
    response = client.get("/admin/analytics/dashboard/by_source.csv", RANGE)
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["source", "audit_logs", "recommended", "clicked"]
    assert rows[1][:8] == ["alert", "4", "4", "3", "3", "1.0000", "0.7500", "1.0000"]
    response = client.get("/admin/analytics/dashboard/alert_outcomes.csv", RANGE)
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][:6] == ["4", "4", "3", "2", "3", "720.0000"]


def test_an_empty_range_says_no_alert_was_shown(client, staff_user, settings):
    settings.TIME_ZONE = "UTC"
    client.force_login(staff_user)
    html = client.get("/admin/analytics/dashboard/", RANGE).content.decode()
    assert "No alert was shown to an engineer in this range." in html
