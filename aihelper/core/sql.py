"""Raw SQL of the project infrastructure: catalog reads for the health checks and verify_phase2, and the
database creation of the embedded server (on its own psycopg connection: Django is not connected yet)."""

from __future__ import annotations

import psycopg
from django.db import connections
from psycopg import sql

PGVECTOR_VERSION = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
SERVER_VERSION = "SELECT current_setting('server_version')"


def pgvector_version(*, using: str = "default") -> str | None:
    """The installed pgvector version, or None when the extension is not installed."""
    with connections[using].cursor() as cursor:
        cursor.execute(PGVECTOR_VERSION)
        row = cursor.fetchone()
    return row[0] if row else None


def server_version(*, using: str = "default") -> str:
    with connections[using].cursor() as cursor:
        cursor.execute(SERVER_VERSION)
        return cursor.fetchone()[0]


DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = %s"


def database_create_if_missing(conn: psycopg.Connection, *, dbname: str) -> bool:
    """CREATE DATABASE ``dbname`` unless it exists (another process may create it at the same moment).
    ``conn`` is an autocommit connection to the maintenance database. True when this call created it."""
    if conn.execute(DATABASE_EXISTS, [dbname]).fetchone():
        return False
    try:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.errors.DuplicateDatabase:
        return False
    return True
