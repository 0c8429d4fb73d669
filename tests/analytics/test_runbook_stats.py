from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from analytics import estimators
from analytics.models import RunbookStats, StatsRun
from analytics.selectors import runbook_feedback_scores
from analytics.services.learning import runbook_stats_update
from runbooks.models import Runbook
from tests.analytics.fixtures import END, START, event, make_log
from tests.factories import GroupFactory
from tests.runbooks.factories import RunbookExecutionFactory, RunbookFactory

pytestmark = pytest.mark.django_db

NOW = END + dt.timedelta(days=1)


def test_pbm_recovers_known_propensities():
    theta = {1: 1.0, 2: 0.5, 3: 0.25}
    gamma = {"a": 0.8, "b": 0.4, "c": 0.2, "d": 0.6}
    counts = {(r, k): (10000, round(10000 * theta[k] * g)) for r, g in gamma.items() for k in theta}
    estimated = estimators.pbm_propensities(counts)
    assert estimated == {k: pytest.approx(v, abs=0.01) for k, v in theta.items()}
    ctrs = estimators.ipw_ctr(counts, estimated)
    assert {r: c.debiased_ctr for r, c in ctrs.items()} == {r: pytest.approx(g, abs=0.01) for r, g in gamma.items()}
    scores = estimators.feedback_scores(ctrs)
    assert all(-1 <= s <= 1 for s in scores.values())
    assert scores["a"] > scores["d"] > 0 > scores["b"] > scores["c"]


def test_feedback_scores_without_data_are_zero():
    assert estimators.feedback_scores({}) == {}
    assert estimators.pbm_propensities({}) == {}


def clicks_world(user):
    """good: always clicked, even at rank 2; bad: at rank 1 twenty times, never clicked."""
    good, bad = RunbookFactory(slug="t/good"), RunbookFactory(slug="t/bad")
    for i in range(20):
        at = START + dt.timedelta(minutes=10 * i)
        log = make_log(user=user, created_at=at, strategy="multiple_options", presented=[bad, good])
        event(log, good, "clicked_link", at + dt.timedelta(seconds=20))
    return good, bad


def test_update_is_idempotent_and_skips_when_nothing_changed(user):
    good, bad = clicks_world(user)
    first = runbook_stats_update(now=NOW)
    assert not first.skipped and first.runbooks == 2
    snapshot = list(RunbookStats.objects.order_by("runbook_id").values())
    again = runbook_stats_update(now=NOW, force=True)
    assert not again.skipped
    assert list(RunbookStats.objects.order_by("runbook_id").values()) == snapshot
    assert runbook_stats_update(now=NOW).skipped
    assert StatsRun.objects.count() == 2

    stats = {s.runbook_id: s for s in RunbookStats.objects.all()}
    assert (stats[good.pk].impressions, stats[good.pk].clicks) == (20, 20)
    assert stats[good.pk].feedback_score > 0 > stats[bad.pk].feedback_score
    assert "low click-through at rank 1 (0/20 = 0%)" in stats[bad.pk].stale_reason
    assert stats[good.pk].stale_reason == ""


def test_feedback_scores_selector_is_bounded_and_complete(user):
    good, bad = clicks_world(user)
    runbook_stats_update(now=NOW)
    unknown = RunbookFactory(slug="t/unknown").pk
    scores = runbook_feedback_scores([good.pk, bad.pk, unknown])
    assert set(scores) == {good.pk, bad.pk, unknown}
    assert scores[unknown] == 0.0
    assert all(-1.0 <= value <= 1.0 for value in scores.values())


def test_clicks_from_users_who_may_not_see_a_runbook_are_ignored(user):
    hidden = RunbookFactory(slug="t/hidden", allowed_groups=[GroupFactory(name="secret")])
    for i in range(5):
        at = START + dt.timedelta(minutes=i)
        log = make_log(user=user, created_at=at, strategy="single_solution", presented=[hidden])
        event(log, hidden, "clicked_link", at + dt.timedelta(seconds=5))
    runbook_stats_update(now=NOW)
    stats = RunbookStats.objects.get(runbook=hidden)
    assert (stats.impressions, stats.clicks, stats.feedback_score) == (0, 0, 0.0)


def test_staleness_failures_and_no_views(user):
    failing = RunbookFactory(slug="t/failing")
    forgotten = RunbookFactory(slug="t/forgotten")
    Runbook.objects.filter(pk=forgotten.pk).update(created_at=NOW - dt.timedelta(days=200))
    for status in ["failed", "failed", "failed", "succeeded", "failed"]:
        RunbookExecutionFactory(runbook=failing, user=user, status=status, started_at=START)
    runbook_stats_update(now=NOW)
    stats = {s.runbook.slug: s for s in RunbookStats.objects.select_related("runbook")}
    assert stats["t/failing"].stale_reason == "high failure rate (4/5 runs failed)"
    assert stats["t/failing"].smoothed_success == pytest.approx((1 + 2) / (5 + 4))
    assert stats["t/forgotten"].stale_reason == "no clicks or views for 90 days"


def test_admin_lists_stale_runbooks_with_a_filter(client, staff_user, user):
    clicks_world(user)
    runbook_stats_update(now=NOW)
    client.force_login(staff_user)
    url = reverse("admin:analytics_runbookstats_changelist")
    page = client.get(url, {"stale": "low_ctr"}).content.decode()
    assert "t/bad" in page and "t/good" not in page
    assert "low click-through at rank 1" in page
    assert "t/good" in client.get(url, {"stale": "fresh"}).content.decode()


def test_command_reports_and_is_safe_to_rerun(user):
    out = io.StringIO()
    call_command("update_runbook_stats", stdout=out)
    call_command("update_runbook_stats", stdout=out)
    assert "up to date" in out.getvalue()
    call_command("update_runbook_stats", "--force", stdout=out)
    assert StatsRun.objects.count() == 2
