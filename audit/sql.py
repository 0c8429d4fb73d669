"""Every raw SQL statement of the audit app (migrations aside), each a named constant or function.

Values are bound parameters and identifiers go through ``psycopg.sql``; nothing is built from input
text. The functions run on the default connection and leave transactions to their callers (the
services in audit/services/). Each statement has its own test on data whose answer is known
(tests/audit/test_sql.py).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import F, Func, IntegerField, JSONField, Value
from psycopg import sql

from audit.models import EventIdClaim, RunbookInteractionEvent

EVENTS_TABLE = RunbookInteractionEvent._meta.db_table
DEFAULT_PARTITION = "runbook_interaction_events_default"

# --- Monthly partitions of the event store --------------------------------------------------------
# runbook_events_ensure_partition(month) (migration 0002) creates the partition of that month if it is
# missing, moving the month's rows out of DEFAULT first; it returns the rows moved, or -1 when the
# partition already existed.

# One row per month from the month before %s (a first of the month) to %s months after it:
# (YYYY-MM, rows moved or -1).
PARTITIONS_ENSURE_AROUND_SQL = (
    "SELECT to_char(month, 'YYYY-MM'), runbook_events_ensure_partition(month) FROM ("
    " SELECT (date_trunc('month', %s::date) + make_interval(months => m))::date AS month"
    " FROM generate_series(-1, %s) AS m) months"
    " ORDER BY month"
)


def partitions_ensure_around(*, month: dt.date, months_ahead: int) -> list[tuple[str, int]]:
    """Ensure the partitions from the month before ``month`` to ``months_ahead`` after it."""
    with connection.cursor() as cursor:
        cursor.execute(PARTITIONS_ENSURE_AROUND_SQL, [month, months_ahead])
        return [(label, moved) for label, moved in cursor.fetchall()]


# The months (first day, UTC) that have rows in the DEFAULT partition, i.e. no partition of their own.
DEFAULT_PARTITION_MONTHS_SQL = sql.SQL(
    "SELECT DISTINCT date_trunc('month', event_timestamp AT TIME ZONE 'UTC')::date AS month"
    " FROM {default} ORDER BY month"
).format(default=sql.Identifier(DEFAULT_PARTITION))


def default_partition_months() -> list[dt.date]:
    with connection.cursor() as cursor:
        cursor.execute(DEFAULT_PARTITION_MONTHS_SQL.as_string(connection.connection))
        return [month for (month,) in cursor.fetchall()]


PARTITION_ENSURE_SQL = "SELECT runbook_events_ensure_partition(%s::date)"


def partition_ensure(month: dt.date) -> int:
    """Ensure the partition of ``month``: rows moved from DEFAULT, or -1 when it already existed."""
    with connection.cursor() as cursor:
        cursor.execute(PARTITION_ENSURE_SQL, [month])
        return cursor.fetchone()[0]


# The monthly partitions (runbook_interaction_events_yYYYYmMM) attached to the event store; DEFAULT
# is not one of them.
MONTHLY_PARTITIONS_SQL = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " JOIN pg_class p ON p.oid = i.inhparent"
    " WHERE p.relname = %s AND c.relname ~ '_y[0-9]{4}m[0-9]{2}$'"
    " ORDER BY c.relname"
)


def monthly_partitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(MONTHLY_PARTITIONS_SQL, [EVENTS_TABLE])
        return [name for (name,) in cursor.fetchall()]


PARTITION_DETACH_SQL = sql.SQL("ALTER TABLE {parent} DETACH PARTITION {partition}")
PARTITION_DROP_SQL = sql.SQL("DROP TABLE {partition}")


def partition_detach_and_drop(name: str) -> None:
    """Detach the partition ``name`` from the event store and drop it with its events."""
    partition = sql.Identifier(name)
    with connection.cursor() as cursor:
        detach = PARTITION_DETACH_SQL.format(parent=sql.Identifier(EVENTS_TABLE), partition=partition)
        cursor.execute(detach.as_string(connection.connection))
        cursor.execute(PARTITION_DROP_SQL.format(partition=partition).as_string(connection.connection))


# Dropped partitions take their events, not the event-id claims (an unpartitioned table).
EVENT_ID_CLAIMS_DELETE_BEFORE_SQL = sql.SQL("DELETE FROM {claims} WHERE event_timestamp < %s").format(
    claims=sql.Identifier(EventIdClaim._meta.db_table)
)


def event_id_claims_delete_before(cutoff: dt.date | dt.datetime) -> int:
    """Delete the claims of events older than ``cutoff``; returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(EVENT_ID_CLAIMS_DELETE_BEFORE_SQL.as_string(connection.connection), [cutoff])
        return cursor.rowcount


# --- Purge of one answer's rows (audit.services.store.audit_logs_purge) ----------------------------

# The events of the given audit logs and their event-id claims, in one statement: (events, claims) deleted.
AUDIT_LOG_EVENTS_PURGE_SQL = sql.SQL(
    "WITH events AS (DELETE FROM {events} WHERE audit_log_id = ANY(%s::uuid[]) RETURNING event_id),"
    " claims AS (DELETE FROM {claims} WHERE event_id IN (SELECT event_id FROM events) RETURNING event_id)"
    " SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM claims)"
).format(events=sql.Identifier(EVENTS_TABLE), claims=sql.Identifier(EventIdClaim._meta.db_table))


def audit_log_events_purge(audit_log_ids: Sequence[uuid.UUID]) -> tuple[int, int]:
    """Delete the events of these audit logs and their event-id claims: (events, claims) deleted."""
    with connection.cursor() as cursor:
        cursor.execute(AUDIT_LOG_EVENTS_PURGE_SQL.as_string(connection.connection), [list(audit_log_ids)])
        events, claims = cursor.fetchone()
    return events, claims


# --- Click tracking -------------------------------------------------------------------------------

# audit_click_record (migration 0005) locks the user's audit log, checks and appends the click and
# writes its event; it returns {"status": created|duplicate|not_found|session_mismatch|not_presented|
# rank_mismatch, ...}. Named arguments, so the call says which value is which.
CLICK_RECORD_SQL = (
    "SELECT audit_click_record(p_user_id => %(user_id)s, p_audit_log_id => %(audit_log_id)s,"
    " p_session_id => %(session_id)s, p_solution_id => %(solution_id)s, p_solution_type => %(solution_type)s,"
    " p_user_action => %(user_action)s, p_client_rank => %(client_rank)s, p_event_id => %(event_id)s,"
    " p_source => %(source)s, p_event_type => %(event_type)s)"
)


def click_record_call(
    *,
    user_id: int,
    audit_log_id: uuid.UUID | str,
    session_id: uuid.UUID | str | None,
    solution_id: str,
    solution_type: str,
    user_action: str,
    client_rank: int | None,
    event_id: uuid.UUID,
    source: str,
    event_type: str,
) -> dict:
    """Call audit_click_record; returns its outcome (a dict with at least ``status``)."""
    params = {
        "user_id": user_id,
        "audit_log_id": audit_log_id,
        "session_id": session_id,
        "solution_id": str(solution_id),
        "solution_type": solution_type,
        "user_action": user_action,
        "client_rank": client_rank,
        "event_id": event_id,
        "source": source,
        "event_type": str(event_type),
    }
    with connection.cursor() as cursor:
        cursor.execute(CLICK_RECORD_SQL, params)
        outcome = cursor.fetchone()[0]
    return json.loads(outcome) if isinstance(outcome, str) else outcome


# --- Serialising concurrent requests --------------------------------------------------------------

# Held until the end of the current transaction; the key text is hashed to the lock's integer id.
ADVISORY_XACT_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext(%s))"


def advisory_xact_lock(key: str) -> None:
    """Wait for, then hold until the transaction ends, the lock named ``key`` (call inside atomic())."""
    with connection.cursor() as cursor:
        cursor.execute(ADVISORY_XACT_LOCK_SQL, [key])


# --- JSON lists in AuditLog.user_modifications, computed by PostgreSQL -----------------------------
# ORM expressions, so they compose with select_for_update()/update(). Their templates join compiled
# fragments of the query (column, placeholders); every value stays a bound parameter.

JSONB_APPEND_TEMPLATE = (
    "(jsonb_set(COALESCE({column}, '{{}}'::jsonb), ARRAY[({key})::text],"
    " COALESCE({column} -> ({key})::text, '[]'::jsonb) || ({item})::jsonb) || ({replace})::jsonb)"
)
LIST_LENGTH_TEMPLATE = "jsonb_array_length(COALESCE({column} -> ({key})::text, '[]'::jsonb))"
STORED_ENTRY_TEMPLATE = (
    "jsonb_path_query_first(COALESCE({column} -> ({key})::text, '[]'::jsonb), '$[*] ? (@.event_id == $id)',"
    " jsonb_build_object('id', ({value})::text))"
)


class JsonbAppend(Func):
    """user_modifications with ``item`` appended to the list under ``key`` and ``replace``'s top-level
    keys set, computed by PostgreSQL: the growing list is never read into Python or re-serialised."""

    output_field = JSONField()

    def __init__(self, *, key: str, item: dict, replace: dict | None = None) -> None:
        super().__init__(
            F("user_modifications"),
            Value(key),
            Value(json.dumps([item], cls=DjangoJSONEncoder)),
            Value(json.dumps(replace or {}, cls=DjangoJSONEncoder)),
        )

    def as_sql(self, compiler, connection, **extra):
        (column, column_params), (key, key_params), (item, item_params), (replace, replace_params) = (
            compiler.compile(expression) for expression in self.source_expressions
        )
        template = JSONB_APPEND_TEMPLATE.format(column=column, key=key, item=item, replace=replace)
        return template, (*column_params, *key_params, *column_params, *key_params, *item_params, *replace_params)


class ListLength(Func):
    """Length of the user_modifications list under ``key`` (0 when absent)."""

    output_field = IntegerField()

    def __init__(self, key: str) -> None:
        super().__init__(F("user_modifications"), Value(key))

    def as_sql(self, compiler, connection, **extra):
        (column, column_params), (key, key_params) = (compiler.compile(e) for e in self.source_expressions)
        return LIST_LENGTH_TEMPLATE.format(column=column, key=key), (*column_params, *key_params)


class StoredEntry(Func):
    """The entry with this event_id in the user_modifications list under ``key``, or NULL (jsonpath)."""

    output_field = JSONField()

    def __init__(self, key: str, event_id: uuid.UUID) -> None:
        super().__init__(F("user_modifications"), Value(key), Value(str(event_id)))

    def as_sql(self, compiler, connection, **extra):
        (column, column_params), (key, key_params), (value, value_params) = (
            compiler.compile(e) for e in self.source_expressions
        )
        template = STORED_ENTRY_TEMPLATE.format(column=column, key=key, value=value)
        return template, (*column_params, *key_params, *value_params)


# --- Retention: text of old audit logs --------------------------------------------------------------
# The engineer's words inside the JSON of audit logs created before %(cutoff)s: answer-feedback
# comments become %(marker)s (rating, time and event id stay: they are metrics) and the page context
# becomes {}. Rows already blanked are not touched again. Returns the rows changed.
AUDIT_LOG_JSON_TEXT_BLANK_SQL = """
UPDATE ai_helper_audit_logs a
   SET user_modifications = CASE
         WHEN jsonb_typeof(a.user_modifications -> 'feedback') = 'array' THEN jsonb_set(
             a.user_modifications, '{feedback}',
             (SELECT COALESCE(jsonb_agg(CASE WHEN COALESCE(entry ->> 'comment', '') IN ('', %(marker)s) THEN entry
                                             ELSE entry || jsonb_build_object('comment', %(marker)s::text) END
                                        ORDER BY position), '[]'::jsonb)
                FROM jsonb_array_elements(a.user_modifications -> 'feedback') WITH ORDINALITY AS f(entry, position)))
         ELSE a.user_modifications END,
       ai_action_details = CASE
         WHEN a.ai_action_details -> 'page_context' NOT IN ('{}'::jsonb, 'null'::jsonb)
         THEN jsonb_set(a.ai_action_details, '{page_context}', '{}'::jsonb)
         ELSE a.ai_action_details END
 WHERE a.created_at < %(cutoff)s
   AND (EXISTS (SELECT 1 FROM jsonb_array_elements(
                  CASE WHEN jsonb_typeof(a.user_modifications -> 'feedback') = 'array'
                       THEN a.user_modifications -> 'feedback' ELSE '[]'::jsonb END) AS f(entry)
                 WHERE COALESCE(entry ->> 'comment', '') NOT IN ('', %(marker)s))
        OR a.ai_action_details -> 'page_context' NOT IN ('{}'::jsonb, 'null'::jsonb))
"""


def audit_log_json_text_blank(*, cutoff: dt.datetime, marker: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(AUDIT_LOG_JSON_TEXT_BLANK_SQL, {"cutoff": cutoff, "marker": marker})
        return cursor.rowcount


# --- Archive of a month's partition (audit.services.partitions.event_partition_archive / _restore) --------
# The partition's rows as CSV with a header, in a stable order so the same month gives the same bytes.
PARTITION_EXPORT_SQL = sql.SQL(
    "COPY (SELECT * FROM {partition} ORDER BY event_timestamp, event_id) TO STDOUT WITH (FORMAT csv, HEADER true)"
)
PARTITION_COUNT_SQL = sql.SQL("SELECT count(*) FROM {partition}")
# HEADER MATCH: the file's columns must be the table's, by name and order, or nothing is loaded. Into the
# month's partition itself, not the parent: a row of another month breaks the partition's constraint and
# the whole load rolls back, instead of landing in some other month's partition or DEFAULT.
EVENTS_IMPORT_SQL = sql.SQL("COPY {partition} FROM STDIN WITH (FORMAT csv, HEADER MATCH)")
EVENT_ID_CLAIMS_DELETE_BETWEEN_SQL = sql.SQL(
    "DELETE FROM {claims} WHERE event_timestamp >= %s AND event_timestamp < %s"
).format(claims=sql.Identifier(EventIdClaim._meta.db_table))
PARTITION_LOCK_SQL = sql.SQL("LOCK TABLE {partition} IN SHARE MODE")


def partition_name(month: dt.date) -> str:
    """The monthly partition of ``month`` (runbook_events_ensure_partition names them so)."""
    return f"{EVENTS_TABLE}_y{month:%Y}m{month:%m}"


def partition_export(name: str, write) -> None:
    """Stream the partition ``name`` as CSV (header first) to ``write(bytes)``; no writer can change it
    meanwhile (SHARE lock until the caller's transaction ends)."""
    partition = sql.Identifier(name)
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        cursor.execute(PARTITION_LOCK_SQL.format(partition=partition))
        with cursor.copy(PARTITION_EXPORT_SQL.format(partition=partition)) as copy:
            for block in copy:
                write(bytes(block))


def partition_row_count(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(PARTITION_COUNT_SQL.format(partition=sql.Identifier(name)).as_string(connection.connection))
        return cursor.fetchone()[0]


def events_import(name: str, blocks) -> int:
    """Load CSV ``blocks`` (bytes, header first, as partition_export wrote them) into the partition ``name``;
    returns the rows loaded. The insert triggers claim each event id as for any new event."""
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        with cursor.copy(EVENTS_IMPORT_SQL.format(partition=sql.Identifier(name))) as copy:
            for block in blocks:
                copy.write(block)
        return cursor.rowcount


def event_id_claims_delete_between(start: dt.datetime, end: dt.datetime) -> int:
    """Delete the claims of events in [start, end) (an archived month's); returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(EVENT_ID_CLAIMS_DELETE_BETWEEN_SQL.as_string(connection.connection), [start, end])
        return cursor.rowcount
