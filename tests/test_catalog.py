"""The database objects the product relies on really exist (extension, indexes, partitions)."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _one(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def test_vector_extension_is_installed():
    assert _one("SELECT extname FROM pg_extension WHERE extname = 'vector'") == [("vector",)]


def test_runbook_embedding_has_an_hnsw_cosine_index():
    rows = _one("SELECT indexdef FROM pg_indexes WHERE indexname = 'runbooks_embedding_hnsw'")
    assert rows, "HNSW index missing"
    assert "USING hnsw" in rows[0][0]
    assert "vector_cosine_ops" in rows[0][0]


def test_runbook_search_vector_has_a_gin_index():
    rows = _one("SELECT indexdef FROM pg_indexes WHERE indexname = 'runbooks_search_vector_gin'")
    assert rows and "USING gin" in rows[0][0]


def test_event_table_is_partitioned_by_range_on_event_timestamp():
    rows = _one(
        "SELECT pt.partstrat, a.attname FROM pg_partitioned_table pt"
        " JOIN pg_class c ON c.oid = pt.partrelid"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0]"
        " WHERE c.relname = 'runbook_interaction_events'"
    )
    assert rows == [("r", "event_timestamp")]


def test_event_table_has_default_and_monthly_partitions():
    rows = _one(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE p.relname = 'runbook_interaction_events'"
    )
    bounds = dict(rows)
    assert bounds["runbook_interaction_events_default"] == "DEFAULT"
    monthly = [name for name in bounds if name != "runbook_interaction_events_default"]
    assert len(monthly) >= 4, monthly
    assert all(bounds[name].startswith("FOR VALUES FROM") for name in monthly)


def test_event_table_primary_key_is_event_id_and_timestamp():
    rows = _one(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'runbook_interaction_events'::regclass AND contype = 'p'"
    )
    assert rows == [("PRIMARY KEY (event_id, event_timestamp)",)]


def test_event_table_has_the_query_indexes():
    rows = _one("SELECT indexdef FROM pg_indexes WHERE tablename = 'runbook_interaction_events'")
    definitions = " ".join(row[0] for row in rows)
    assert "(runbook_id, event_type, event_timestamp)" in definitions
    assert "(audit_log_id)" in definitions
