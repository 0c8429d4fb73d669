"""The knowledge-gap report's statements (docs/analytics.md, Knowledge gaps): the questions and alerts that
went wrong, with their signals and vectors, and the feedback per runbook for the runbook health."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection
from psycopg import sql

from analytics.sql.common import ATTRIBUTION_WINDOW, run_read

# A question is a gap candidate when its answer recommended no runbook, was marked "Not helpful" (answer
# feedback) or a runbook in it "Does not fit" (feedback_negative event), recommended runbooks nobody
# clicked within 24 h (once the 24 h have passed), or led to a failed execution. "Does not fit" and failed
# runs count only for runbooks the reader may see ({visible}): a restricted reader must not learn of a
# hidden runbook's runs.
GAP_CANDIDATES = """
WITH signals AS (
    SELECT e.audit_log_id,
           bool_or(e.event_type = 'clicked_link') AS clicked,
           bool_or(e.event_type = 'feedback_negative' AND {visible}) AS does_not_fit,
           bool_or(e.event_type = 'failed' AND {visible}) AS failed
    FROM runbook_interaction_events e
    WHERE e.event_timestamp >= %(start)s AND e.event_timestamp < %(events_end)s AND e.audit_log_id IS NOT NULL
      AND e.event_type IN ('clicked_link', 'feedback_negative', 'failed')
    GROUP BY e.audit_log_id
),
logs AS (
    SELECT a.id, a.created_at, a.query,
           NOT jsonb_path_exists(a.ai_action_details, '$.solutions_presented[*] ? (@.type == "runbook")')
               AS no_recommendation,
           jsonb_path_exists(a.user_modifications, '$.feedback[*] ? (@.rating == "down")') AS not_helpful,
           COALESCE(s.does_not_fit, false) AS does_not_fit,
           COALESCE(s.clicked, false) AS clicked,
           COALESCE(s.failed, false) AS failed
    FROM ai_helper_audit_logs a LEFT JOIN signals s ON s.audit_log_id = a.id
    WHERE a.created_at >= %(start)s AND a.created_at < %(end)s AND a.query <> %(blanked)s AND a.query <> ''
),
candidates AS (
    SELECT l.*, NOT l.no_recommendation AND NOT l.clicked AND l.created_at <= %(now)s - %(window)s AS not_clicked
    FROM logs l
)
SELECT c.id, c.created_at, c.query, c.no_recommendation, c.not_helpful, c.does_not_fit, c.not_clicked, c.failed,
       {vector}{totals}
FROM candidates c LEFT JOIN analytics_question_vectors v ON v.audit_log_id = c.id
WHERE (c.no_recommendation OR c.not_helpful OR c.does_not_fit OR c.not_clicked OR c.failed){missing}
ORDER BY {order}"""
# The most recent %(limit)s candidates, with how many there are in all and how many have no vector.
RECENT_TOTALS = ", count(*) OVER (), count(*) FILTER (WHERE v.audit_log_id IS NULL) OVER ()"
RECENT_ORDER = "c.created_at DESC, c.id DESC LIMIT %(limit)s"


@dataclass(frozen=True)
class GapCandidate:
    audit_log_id: uuid.UUID
    created_at: dt.datetime
    query: str
    no_recommendation: bool
    not_helpful: bool
    does_not_fit: bool
    not_clicked: bool
    failed: bool
    vector: np.ndarray | None  # None: not embedded yet (manage.py refresh_gap_vectors)


def _params(start: dt.datetime, end: dt.datetime, now: dt.datetime, blanked: str, visible) -> dict:
    return {
        "visible": list(visible or ()),
        "start": start,
        "end": end,
        "events_end": end + ATTRIBUTION_WINDOW,
        "now": now,
        "window": ATTRIBUTION_WINDOW,
        "blanked": blanked,
    }


@dataclass(frozen=True)
class RecentGapCandidates:
    candidates: list[GapCandidate]  # the most recent ones, oldest first
    total: int  # every candidate of the range
    not_embedded: int  # of every candidate of the range


def _query(*, visible_runbook_ids, missing_only: bool, recent: bool) -> sql.Composable:
    return sql.SQL(GAP_CANDIDATES).format(
        visible=sql.SQL("true" if visible_runbook_ids is None else "e.runbook_id = ANY(%(visible)s::uuid[])"),
        # pgvector's binary form (2-byte dimensions, 2 unused, big-endian float4s): 10x faster than text.
        vector=sql.SQL("NULL::bytea" if missing_only else "vector_send(v.embedding)"),
        totals=sql.SQL(RECENT_TOTALS if recent else ""),
        missing=sql.SQL(" AND v.audit_log_id IS NULL" if missing_only else ""),
        order=sql.SQL(RECENT_ORDER if recent else "c.created_at, c.id"),
    )


def _candidate(row) -> GapCandidate:
    vector = row[8]
    return GapCandidate(*row[:8], None if vector is None else np.frombuffer(bytes(vector)[4:], dtype=">f4"))


def gap_candidates(
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    blanked: str,
    missing_only: bool = False,
    visible_runbook_ids: Sequence[uuid.UUID] | None = None,
) -> list[GapCandidate]:
    """The gap candidates created in [start, end) with their vectors (``missing_only``: those without one,
    and without the vector column). ``visible_runbook_ids`` None: every runbook's events count."""
    query = _query(visible_runbook_ids=visible_runbook_ids, missing_only=missing_only, recent=False)
    return [_candidate(row) for row in run_read(query, _params(start, end, now, blanked, visible_runbook_ids))]


def gap_candidates_recent(
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    blanked: str,
    limit: int,
    visible_runbook_ids: Sequence[uuid.UUID] | None = None,
) -> RecentGapCandidates:
    """The ``limit`` most recent gap candidates of [start, end) with their vectors, and the counts of all."""
    query = _query(visible_runbook_ids=visible_runbook_ids, missing_only=False, recent=True)
    rows = run_read(query, {**_params(start, end, now, blanked, visible_runbook_ids), "limit": limit})
    total, not_embedded = (rows[0][9], rows[0][10]) if rows else (0, 0)
    return RecentGapCandidates([_candidate(row) for row in reversed(rows)], total, not_embedded)


QUESTION_VECTORS_INSERT = sql.SQL(
    "INSERT INTO analytics_question_vectors (audit_log_id, created_at, embedding, embedding_model)"
    " VALUES (%s, %s, %s::real[]::vector, %s) ON CONFLICT (audit_log_id) DO NOTHING"
)


def question_vectors_insert(rows: Sequence[tuple[uuid.UUID, dt.datetime, list[float]]], *, model: str) -> int:
    """Store the vectors of ``rows`` (audit log id, created_at, vector); ids already stored are kept."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.executemany(
            QUESTION_VECTORS_INSERT.as_string(connection.connection),
            [(i, at, list(vector), model) for i, at, vector in rows],
        )
    return len(rows)


RUNBOOK_FEEDBACK = sql.SQL(
    """
SELECT e.runbook_id, count(*) FILTER (WHERE e.event_type = 'feedback_negative'),
       count(*) FILTER (WHERE e.event_type = 'feedback_positive'),
       count(*) FILTER (WHERE e.event_type = 'failed'), count(*) FILTER (WHERE e.event_type = 'succeeded')
FROM runbook_interaction_events e
WHERE e.event_timestamp >= %(start)s AND e.event_timestamp < %(end)s
  AND e.event_type IN ('feedback_negative', 'feedback_positive', 'failed', 'succeeded')
GROUP BY e.runbook_id"""
)


def runbook_feedback_counts(*, start: dt.datetime, end: dt.datetime) -> dict[uuid.UUID, tuple[int, int, int, int]]:
    """{runbook id: ("does not fit", "fits", failed runs, succeeded runs)} of events in [start, end)."""
    rows = run_read(RUNBOOK_FEEDBACK, {"start": start, "end": end})
    return {runbook_id: tuple(counts) for runbook_id, *counts in rows}
