"""The infrastructure's named SQL statements, checked against what the server reports by other means."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from aihelper.core.sql import database_create_if_missing, pgvector_version, server_version

pytestmark = pytest.mark.django_db


def test_pgvector_version_is_the_installed_extension_version():
    with connection.cursor() as cursor:
        cursor.execute("SELECT installed_version FROM pg_available_extensions WHERE name = 'vector'")
        installed = cursor.fetchone()[0]
    assert installed
    assert pgvector_version() == installed


def test_server_version_is_the_connected_servers_version():
    connection.ensure_connection()
    major = connection.connection.info.server_version // 10000  # libpq: 180006 -> 18
    assert int(server_version().split(".")[0]) == major


def test_database_create_if_missing_creates_once():
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["dbname"] = "postgres"
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(**params, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no maintenance database to connect to on this server: {exc}")
    with conn:
        try:
            assert database_create_if_missing(conn, dbname=name) is True
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the configured role may not create databases (external DATABASE_URL)")
        try:
            assert database_create_if_missing(conn, dbname=name) is False
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()[0] == 1
        finally:
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
