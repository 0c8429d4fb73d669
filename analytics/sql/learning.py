"""What update_runbook_stats reads (analytics.services.learning): presentations and clicks per rank,
execution outcomes, and the watermarks that tell whether anything changed since the last run."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db import connections, router
from psycopg import sql

from analytics.models import RunbookStats
from analytics.sql.common import ATTRIBUTION_WINDOW, run_read


def _allowed_reader(alias: str) -> sql.Composable:
    """The event's user may (still) see the runbook: unrestricted, superuser, or in an allowed group."""
    return sql.SQL(
        """(NOT EXISTS (SELECT 1 FROM runbooks_allowed_groups g WHERE g.runbook_id = {a}.runbook_id)
       OR EXISTS (SELECT 1 FROM auth_user u WHERE u.id = {a}.user_id AND u.is_superuser)
       OR EXISTS (SELECT 1 FROM runbooks_allowed_groups g JOIN auth_user_groups ug ON ug.group_id = g.group_id
                  WHERE g.runbook_id = {a}.runbook_id AND ug.user_id = {a}.user_id))"""
    ).format(a=sql.Identifier(alias))


@dataclass(frozen=True)
class RankCounts:
    runbook_id: uuid.UUID
    rank: int
    impressions: int
    clicks: int


FEEDBACK_RANK_COUNTS = sql.SQL(
    """
WITH presented AS (
    SELECT e.audit_log_id, e.runbook_id, min(e.rank) AS rank, min(e.event_timestamp) AS presented_at
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(since)s AND e.event_timestamp < %(until)s
      AND e.event_type = 'presented' AND e.audit_log_id IS NOT NULL AND e.rank IS NOT NULL AND {allowed}
    GROUP BY e.audit_log_id, e.runbook_id
),
clicked AS (
    SELECT e.audit_log_id, e.runbook_id, min(e.event_timestamp) AS clicked_at
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(since)s AND e.event_timestamp < %(until_window)s
      AND e.event_type = 'clicked_link' AND e.audit_log_id IS NOT NULL
    GROUP BY e.audit_log_id, e.runbook_id
)
SELECT p.runbook_id, p.rank, count(*),
       count(*) FILTER (WHERE c.clicked_at >= p.presented_at AND c.clicked_at < p.presented_at + %(window)s)
FROM presented p LEFT JOIN clicked c ON c.audit_log_id = p.audit_log_id AND c.runbook_id = p.runbook_id
GROUP BY p.runbook_id, p.rank ORDER BY p.runbook_id, p.rank"""
).format(allowed=_allowed_reader("e"))


def feedback_rank_counts(*, since: dt.datetime, until: dt.datetime) -> list[RankCounts]:
    """Per (runbook, presented rank): presentations and clicked presentations (click within 24 h),
    only from users allowed to see the runbook."""
    params = {"since": since, "until": until, "until_window": until + ATTRIBUTION_WINDOW, "window": ATTRIBUTION_WINDOW}
    return [RankCounts(*row) for row in run_read(FEEDBACK_RANK_COUNTS, params)]


@dataclass(frozen=True)
class OutcomeCounts:
    runbook_id: uuid.UUID
    succeeded: int
    failed: int
    last_interaction_at: dt.datetime | None


FEEDBACK_OUTCOME_COUNTS = sql.SQL(
    """
WITH outcomes AS (
    SELECT x.runbook_id, count(*) FILTER (WHERE x.status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE x.status = 'failed') AS failed
    FROM runbook_executions x
    WHERE x.started_at >= %(since)s AND x.started_at < %(until)s AND x.status IN ('succeeded', 'failed')
      AND {allowed_x}
    GROUP BY x.runbook_id
),
seen AS (
    SELECT e.runbook_id, max(e.event_timestamp) AS last_at
    FROM runbook_interaction_events e
    -- an alert resolving is not an engineer touching the runbook its event is filed under
    WHERE e.event_timestamp >= %(since)s AND e.event_timestamp < %(until)s
      AND e.event_type NOT IN ('presented', 'alert_resolved')
    GROUP BY e.runbook_id
)
SELECT COALESCE(o.runbook_id, s.runbook_id), COALESCE(o.succeeded, 0), COALESCE(o.failed, 0), s.last_at
FROM outcomes o FULL JOIN seen s ON s.runbook_id = o.runbook_id"""
).format(allowed_x=_allowed_reader("x"))


def feedback_outcome_counts(*, since: dt.datetime, until: dt.datetime) -> list[OutcomeCounts]:
    """Per runbook: finished executions (succeeded, failed) by allowed users, and the last time an
    engineer clicked, viewed or ran it (any event but ``presented`` and ``alert_resolved``)."""
    return [OutcomeCounts(*row) for row in run_read(FEEDBACK_OUTCOME_COUNTS, {"since": since, "until": until})]


EVENT_WATERMARK = sql.SQL("SELECT max(event_timestamp), count(*) FROM runbook_interaction_events")
EXECUTION_WATERMARK = sql.SQL("SELECT count(*) FROM runbook_executions WHERE status IN ('succeeded', 'failed')")


def event_watermark() -> tuple[dt.datetime | None, int]:
    """(latest event_timestamp, number of events): what update_runbook_stats has seen."""
    return tuple(run_read(EVENT_WATERMARK, {})[0])


def execution_watermark() -> int:
    """Finished executions so far: a new one means the outcome counts changed."""
    return run_read(EXECUTION_WATERMARK, {})[0][0]


# The chat's search reads this for every answer (runbooks.search feedback_scores): a plain statement (the ORM's
# query building was a measurable part of an answer's CPU under load), on the database the router reads
# RunbookStats from, as the ORM query did.
FEEDBACK_SCORES = "SELECT runbook_id, feedback_score FROM analytics_runbookstats WHERE runbook_id = ANY(%s::uuid[])"


def feedback_scores(runbook_ids: list) -> dict:
    """{runbook id: stored feedback_score} for the ids that have statistics."""
    with connections[router.db_for_read(RunbookStats)].cursor() as cursor:
        cursor.execute(FEEDBACK_SCORES, [runbook_ids])
        return dict(cursor.fetchall())
