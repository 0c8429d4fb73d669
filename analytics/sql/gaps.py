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
# clicked within 24 h (once the 24 h have passed), or led to a failed execution.
GAP_CANDIDATES = """
WITH signals AS (
    SELECT e.audit_log_id,
           bool_or(e.event_type = 'clicked_link') AS clicked,
           bool_or(e.event_type = 'feedback_negative') AS does_not_fit,
           bool_or(e.event_type = 'failed') AS failed
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
       {vector}
FROM candidates c LEFT JOIN analytics_question_vectors v ON v.audit_log_id = c.id
WHERE (c.no_recommendation OR c.not_helpful OR c.does_not_fit OR c.not_clicked OR c.failed){missing}
ORDER BY c.created_at, c.id"""


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


def _params(start: dt.datetime, end: dt.datetime, now: dt.datetime, blanked: str) -> dict:
    return {
        "start": start,
        "end": end,
        "events_end": end + ATTRIBUTION_WINDOW,
        "now": now,
        "window": ATTRIBUTION_WINDOW,
        "blanked": blanked,
    }


def gap_candidates(
    *, start: dt.datetime, end: dt.datetime, now: dt.datetime, blanked: str, missing_only: bool = False
) -> list[GapCandidate]:
    """The gap candidates created in [start, end) with their vectors (``missing_only``: those without one,
    and without the vector column)."""
    query = sql.SQL(GAP_CANDIDATES).format(
        # pgvector's binary form (2-byte dimensions, 2 unused, big-endian float4s): 10x faster than text.
        vector=sql.SQL("NULL::bytea" if missing_only else "vector_send(v.embedding)"),
        missing=sql.SQL(" AND v.audit_log_id IS NULL" if missing_only else ""),
    )
    return [
        GapCandidate(*row[:-1], None if row[-1] is None else np.frombuffer(bytes(row[-1])[4:], dtype=">f4"))
        for row in run_read(query, _params(start, end, now, blanked))
    ]


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
