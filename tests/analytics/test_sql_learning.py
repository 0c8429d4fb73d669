"""What update_runbook_stats reads (analytics/sql/learning.py), on tests/analytics/fixtures.py."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.sql.learning import event_watermark, execution_watermark, feedback_outcome_counts, feedback_rank_counts
from tests.analytics.fixtures import END, START, T0, build_world, event, make_log
from tests.factories import GroupFactory, UserFactory
from tests.runbooks.factories import RunbookExecutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(user):
    return build_world(user)


@pytest.fixture
def member():
    return UserFactory(username="member", groups=[GroupFactory(name="secret")])


def test_feedback_rank_counts_only_from_readers_allowed_to_see_the_runbook(world, member):
    # alice (the fixtures' user) is not in "secret", so L5's presentation and click of R do not count;
    # a member of "secret" seeing R does.
    log = make_log(
        user=member, created_at=START + dt.timedelta(hours=10), strategy="single_solution", presented=[world.r]
    )
    event(log, world.r, "clicked_link", START + dt.timedelta(hours=10, seconds=3))
    counts = {(c.runbook_id, c.rank): (c.impressions, c.clicks) for c in feedback_rank_counts(since=START, until=END)}
    assert [key for key in counts if key[0] == world.r.pk] == [(world.r.pk, 1)]
    assert counts[(world.r.pk, 1)] == (1, 1)
    assert counts[(world.a.pk, 1)] == (2, 2)  # L1, L2
    assert counts[(world.a.pk, 2)] == (1, 1)  # L5
    assert counts[(world.c.pk, 1)] == (1, 0)  # L6: click 25 h late


def test_feedback_outcome_counts(world, user, member):
    def run(runbook, status, *, by=user, at=START + dt.timedelta(hours=1)):
        RunbookExecutionFactory(runbook=runbook, user=by, status=status, started_at=at)

    for status in ("succeeded", "succeeded", "failed", "in_progress"):
        run(world.a, status)
    run(world.a, "failed", at=START - dt.timedelta(days=1))  # before the window
    run(world.r, "failed")  # alice may not see R: not counted
    run(world.r, "succeeded", by=member)
    outcomes = {
        row.runbook_id: (row.succeeded, row.failed, row.last_interaction_at)
        for row in feedback_outcome_counts(since=START, until=END)
    }
    # Last click, view or run event in the window: A clicked in L5 after 40 min, B started in L3 after
    # 100 s, R clicked in L5 after 5 s; C's only click (L6) is after the window.
    assert outcomes == {
        world.a.pk: (2, 1, T0 + dt.timedelta(hours=4, minutes=40)),
        world.b.pk: (0, 0, T0 + dt.timedelta(hours=2, seconds=100)),
        world.r.pk: (1, 0, T0 + dt.timedelta(hours=4, seconds=5)),
    }
    assert execution_watermark() == 6  # finished runs, whoever ran them, whenever


def test_watermarks_of_an_empty_database(db):
    assert event_watermark() == (None, 0)
    assert execution_watermark() == 0


def test_event_watermark(world):
    # 10 presentations and 12 other events; the latest is L6's late click, 2026-01-11 14:00.
    assert event_watermark() == (T0 + dt.timedelta(hours=5 + 25), 22)
