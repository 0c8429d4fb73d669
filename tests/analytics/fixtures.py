"""Hand-built analytics data whose every metric is worked out in tests/analytics/test_sql_metrics.py.

Range 2026-01-10 (UTC). Runbooks A, B, C are unrestricted; R is restricted to the group "secret".

| log | strategy          | source    | presented (rank)  | events after created_at                              |
| L1  | single_solution   | chat_page | A1                | click A +10s, view A +20s, start A +60s, succeed A +120s |
| L2  | multiple_options  | widget    | A1 B2 C3          | click B +30s, view A +40s, click A +50s                 |
| L3  | multiple_options  | chat_page | B1 C2             | start B +100s (no click: not in the funnel)             |
| L4  | no_solutions      | chat_page | -                 | -                                                        |
| L5  | primary_plus_one  | chat_page | R1 A2             | click R +5s, click A +40min                              |
| L6  | single_solution   | chat_page | C1                | click C +25h (outside the 24 h window)                   |
| L7  | single_solution   | chat_page | A1                | created 2026-01-11 01:00, out of range; click A +1s      |
L1 is in experiment exp1/control, L2 in exp1/treatment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tests.audit.factories import AuditLogFactory, interaction_event
from tests.factories import GroupFactory
from tests.runbooks.factories import RunbookFactory

T0 = dt.datetime(2026, 1, 10, 8, 0, tzinfo=dt.UTC)
START = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
END = dt.datetime(2026, 1, 11, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


@dataclass
class World:
    a: object
    b: object
    c: object
    r: object
    logs: dict


def make_log(
    *, user, created_at, strategy, presented=(), source="chat_page", experiment=None, variant=None, query="disk full"
):
    return AuditLogFactory(
        user=user,
        created_at=created_at,
        query=query,
        strategy=strategy,
        presented=presented,
        source=source,
        experiment=experiment or "",
        variant=variant or "",
    )


def event(log, runbook, event_type, at, *, rank=None, user=None):
    interaction_event(audit_log=log, runbook=runbook, event_type=event_type, at=at, rank=rank, user=user)


def build_world(user) -> World:
    secret = GroupFactory(name="secret")
    a = RunbookFactory(slug="t/a", name="A")
    b = RunbookFactory(slug="t/b", name="B")
    c = RunbookFactory(slug="t/c", name="C")
    r = RunbookFactory(slug="t/r", name="R", allowed_groups=[secret])
    logs = {}
    t = T0
    logs["L1"] = log = make_log(
        user=user, created_at=t, strategy="single_solution", presented=[a], experiment="exp1", variant="control"
    )
    event(log, a, "clicked_link", t + 10 * S)
    event(log, a, "viewed_detail", t + 20 * S)
    event(log, a, "started_execution", t + 60 * S)
    event(log, a, "succeeded", t + 120 * S)

    t = T0 + dt.timedelta(hours=1)
    logs["L2"] = log = make_log(
        user=user,
        created_at=t,
        strategy="multiple_options",
        presented=[a, b, c],
        source="widget",
        experiment="exp1",
        variant="treatment",
    )
    event(log, b, "clicked_link", t + 30 * S)
    event(log, a, "viewed_detail", t + 40 * S)
    event(log, a, "clicked_link", t + 50 * S)

    t = T0 + dt.timedelta(hours=2)
    logs["L3"] = log = make_log(user=user, created_at=t, strategy="multiple_options", presented=[b, c])
    event(log, b, "started_execution", t + 100 * S)

    logs["L4"] = make_log(user=user, created_at=T0 + dt.timedelta(hours=3), strategy="no_solutions")

    t = T0 + dt.timedelta(hours=4)
    logs["L5"] = log = make_log(user=user, created_at=t, strategy="primary_plus_one", presented=[r, a])
    event(log, r, "clicked_link", t + 5 * S)
    event(log, a, "clicked_link", t + dt.timedelta(minutes=40))

    t = T0 + dt.timedelta(hours=5)
    logs["L6"] = log = make_log(user=user, created_at=t, strategy="single_solution", presented=[c])
    event(log, c, "clicked_link", t + dt.timedelta(hours=25))

    t = dt.datetime(2026, 1, 11, 1, 0, tzinfo=dt.UTC)
    logs["L7"] = log = make_log(user=user, created_at=t, strategy="single_solution", presented=[a])
    event(log, a, "clicked_link", t + S)
    return World(a=a, b=b, c=c, r=r, logs=logs)
