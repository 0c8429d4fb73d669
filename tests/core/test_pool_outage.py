"""The connection pool through an outage (aihelper/core/dbbackend): a request neither waits the pool's timeout
for its 503 nor its reconnect backoff afterwards; it connects around the pool while the pool cannot connect."""

from __future__ import annotations

import socket
import time

import pytest
from django.db import connection, connections
from psycopg_pool import ConnectionPool

from aihelper.core.dbbackend import base as dbbackend

pytestmark = pytest.mark.django_db(transaction=True)

ALIAS = "pool_outage_test"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_borrowing_gives_up_at_once_when_the_pools_attempts_fail():
    external = {"EMBEDDED_PGDATA": ""}  # an external server: the pool's attempts only connect
    pool = ConnectionPool(
        f"host=127.0.0.1 port={_closed_port()} dbname=x user=x connect_timeout=2",
        connection_class=dbbackend._pooled_connection_class(external), min_size=1, timeout=10, open=False,
    )
    try:
        pool.open(wait=False)
        deadline = time.monotonic() + 10
        while not pool.connection_class.unreachable and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.connection_class.unreachable, "the pool's first attempt failed (nothing listens there)"
        started = time.monotonic()
        assert dbbackend._borrow(pool) is None
        assert time.monotonic() - started < 1, "no wait for the pool's 10 s timeout"
    finally:
        pool.close(timeout=0)


@pytest.fixture
def pooled_wrapper():
    """A second database alias on the test database with the pool on, closed (with its pool) afterwards."""
    settings_dict = {**connection.settings_dict, "CONN_MAX_AGE": 0,
                     "OPTIONS": {**connection.settings_dict["OPTIONS"],
                                 "pool": {"min_size": 1, "max_size": 2, "timeout": 5, "name": "outage-test"}}}
    connections.settings[ALIAS] = settings_dict  # Django's connection_created receivers look the alias up
    wrapper = connections[ALIAS]
    assert isinstance(wrapper, dbbackend.DatabaseWrapper)
    yield wrapper
    wrapper.close()
    wrapper.close_pool()
    del connections[ALIAS]
    del connections.settings[ALIAS]


def _backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_while_the_pool_cannot_connect_a_request_connects_around_it_and_sends_the_next_back(pooled_wrapper):
    pool = pooled_wrapper.process_pool
    pooled_wrapper.connect()
    assert pooled_wrapper.connection._pool is pool and pooled_wrapper.pool is pool  # borrowed
    pooled_pid = _backend_pid(pooled_wrapper)
    pooled_wrapper.close()
    assert pool.get_stats()["pool_available"] >= 1, "returned to the pool, not closed"

    pool.connection_class.unreachable = True  # as after a failed attempt of the pool (the server was down)
    pooled_wrapper.connect()
    assert pooled_wrapper.around_pool and pooled_wrapper.pool is None
    assert getattr(pooled_wrapper.connection, "_pool", None) is None
    assert _backend_pid(pooled_wrapper) != pooled_pid, "a connection of its own"
    assert pool.connection_class.unreachable is False, "the server answered: the next requests borrow again"
    around = pooled_wrapper.connection
    pooled_wrapper.close()
    assert around.closed, "closed, not handed to the pool it never came from"

    pooled_wrapper.connect()
    assert not pooled_wrapper.around_pool and pooled_wrapper.connection._pool is pool
