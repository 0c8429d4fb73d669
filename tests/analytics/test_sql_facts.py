"""The facts rebuild (analytics/sql/facts.py) writes the known rows of tests/analytics/fixtures.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from analytics.models import LogFact, PairFact
from analytics.sql.facts import audit_log_first_created, facts_rebuild
from tests.analytics.fixtures import END, START, T0, build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(user):
    return build_world(user)


def step_seconds(world, log, runbook):
    """Seconds from the log's creation to the click, view, start and success of the presentation."""
    fact = PairFact.objects.get(audit_log_id=world.logs[log].pk, runbook_id=runbook.pk)
    created = world.logs[log].created_at
    times = (fact.clicked_at, fact.viewed_at, fact.started_at, fact.succeeded_at)
    return [None if at is None else (at - created).total_seconds() for at in times]


def rebuild(start, end):
    with transaction.atomic():
        return facts_rebuild(start=start, end=end)


def test_facts_rebuild_writes_one_row_per_log_and_per_presentation(world):
    # L1..L6 (L7 is the next day); presentations: L1 1, L2 3, L3 2, L4 0, L5 2, L6 1.
    assert rebuild(START, END) == (6, 9)
    logs = {fact.audit_log_id: fact for fact in LogFact.objects.all()}
    per_log = {
        name: (logs[log.pk].presented, logs[log.pk].first_click_rank, logs[log.pk].clicked_runbooks)
        for name, log in world.logs.items()
        if log.pk in logs
    }
    # L2: B clicked first (rank 2), then A; L5: R first (rank 1), then A; L6's click is 25 h late.
    assert per_log == {
        "L1": (1, 1, 1),
        "L2": (3, 2, 2),
        "L3": (2, None, 0),
        "L4": (0, None, 0),
        "L5": (2, 1, 2),
        "L6": (1, None, 0),
    }
    l1, l2, l3 = (logs[world.logs[name].pk] for name in ("L1", "L2", "L3"))
    assert l1.first_click_at == T0 + dt.timedelta(seconds=10)
    assert (l2.source, l2.strategy, l2.experiment, l2.variant) == ("widget", "multiple_options", "exp1", "treatment")
    assert (l3.experiment, l3.variant) == ("", "")

    assert step_seconds(world, "L1", world.a) == [10, 20, 60, 120]
    assert step_seconds(world, "L2", world.a) == [50, None, None, None]  # viewed at 40 s, before the click
    assert step_seconds(world, "L2", world.b) == [30, None, None, None]
    assert step_seconds(world, "L3", world.b) == [None, None, None, None]  # started without a click
    assert step_seconds(world, "L6", world.c) == [None, None, None, None]
    assert PairFact.objects.get(audit_log_id=world.logs["L5"].pk, runbook_id=world.a.pk).rank == 2


def test_facts_rebuild_replaces_only_its_own_range(world):
    split = T0 + dt.timedelta(hours=3)  # L1..L3 before, L4..L6 after
    assert rebuild(START, split) == (3, 6)
    assert rebuild(split, END) == (3, 3)
    assert rebuild(START, split) == (3, 6)  # deletes and rewrites its range: no duplicate, no error
    assert (LogFact.objects.count(), PairFact.objects.count()) == (6, 9)
    assert LogFact.objects.filter(created_at__gte=split).count() == 3


def test_audit_log_first_created(user):
    assert audit_log_first_created() is None
    build_world(user)
    assert audit_log_first_created() == T0  # L1, the earliest of the fixtures
