"""The rollup rebuild: the one analytics statement set that writes (analytics_log_facts and
analytics_pair_facts; docs/analytics.md, Rollups). Reads of the facts are in analytics.sql.common."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from psycopg import sql

from analytics.sql.common import MetricFilter, live_chain_ctes, live_pairs_ctes, run_read

DELETE_PAIR_FACTS = sql.SQL("DELETE FROM analytics_pair_facts WHERE created_at >= %(start)s AND created_at < %(end)s")
DELETE_LOG_FACTS = sql.SQL("DELETE FROM analytics_log_facts WHERE created_at >= %(start)s AND created_at < %(end)s")

# One row per audit log of the chunk, from live_logs and live_pairs (analytics.sql.common).
LOG_FACT_COLUMNS = (
    "audit_log_id",
    "created_at",
    "source",
    "strategy",
    "experiment",
    "variant",
    "presented",
    "first_click_at",
    "first_click_rank",
    "clicked_runbooks",
)
LOG_FACTS_SELECT = sql.SQL(
    """
SELECT l.id, l.created_at, l.source, l.strategy, l.experiment, l.variant,
       count(p.runbook_id), min(p.first_click_at),
       (array_agg(p.rank ORDER BY p.first_click_at, p.rank) FILTER (WHERE p.first_click_at IS NOT NULL))[1],
       count(p.first_click_at)
FROM live_logs l LEFT JOIN live_pairs p ON p.audit_log_id = l.id
GROUP BY l.id, l.created_at, l.source, l.strategy, l.experiment, l.variant"""
)

# One row per presentation of the chunk, from live_pairs and live_chain (analytics.sql.common).
PAIR_FACT_COLUMNS = (
    "audit_log_id",
    "runbook_id",
    "created_at",
    "source",
    "strategy",
    "experiment",
    "variant",
    "rank",
    "carried_over",
    "presented_at",
    "clicked_at",
    "viewed_at",
    "started_at",
    "succeeded_at",
)
PAIR_FACTS_SELECT = sql.SQL(
    """
SELECT p.audit_log_id, p.runbook_id, p.created_at, p.source, p.strategy, p.experiment, p.variant, p.rank,
       p.carried_over, p.presented_at, p.first_click_at, c.viewed_at, c.started_at, c.succeeded_at
FROM live_pairs p JOIN live_chain c ON c.audit_log_id = p.audit_log_id AND c.runbook_id = p.runbook_id"""
)

AUDIT_LOG_FIRST_CREATED = sql.SQL("SELECT min(created_at) FROM ai_helper_audit_logs")


def _insert_into(table: str, columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL("INSERT INTO {} ({}) ").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    )


def facts_rebuild(*, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """(Re)write the facts of audit logs created in [start, end), all runbooks visible, in one statement
    set; the caller runs it in a transaction. Only call for settled logs (end <= now - 24 h), whose
    clicks and funnel steps can no longer change. Returns (log facts, pair facts) written."""
    filters = MetricFilter(start=start, end=end)
    params = filters.params()
    connection.ensure_connection()
    logs = sql.Composed(
        [
            _insert_into("analytics_log_facts", LOG_FACT_COLUMNS),
            sql.SQL("WITH "),
            live_pairs_ctes(filters),
            LOG_FACTS_SELECT,
        ]
    )
    pairs = sql.Composed(
        [
            _insert_into("analytics_pair_facts", PAIR_FACT_COLUMNS),
            sql.SQL("WITH "),
            live_pairs_ctes(filters),
            sql.SQL(",\n"),
            live_chain_ctes(filters, with_logs=False),
            PAIR_FACTS_SELECT,
        ]
    )
    with connection.cursor() as cursor:
        for statement in (DELETE_PAIR_FACTS, DELETE_LOG_FACTS):
            cursor.execute(statement.as_string(connection.connection), params)
        cursor.execute(logs.as_string(connection.connection), params)
        log_rows = cursor.rowcount
        cursor.execute(pairs.as_string(connection.connection), params)
        return log_rows, cursor.rowcount


def audit_log_first_created() -> dt.datetime | None:
    """When the first audit log was written (None: none yet): where the first facts chunk starts."""
    return run_read(AUDIT_LOG_FIRST_CREATED, {})[0][0]
