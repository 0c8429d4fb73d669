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
                                 "pool": {"min_size": 1, "max_size": 1, "timeout": 5, "name": "outage-test"}}}
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


def test_while_the_pool_cannot_connect_a_request_connects_around_it_and_a_new_pool_takes_over(pooled_wrapper):
    pool = pooled_wrapper.process_pool
    pooled_wrapper.connect()
    assert pooled_wrapper.connection._pool is pool and pooled_wrapper.pool is pool  # borrowed
    pooled_pid = _backend_pid(pooled_wrapper)
    pooled_wrapper.close()
    assert pool.get_stats()["pool_available"] == 1, "returned to the pool, not closed"

    # As after a failed attempt of the pool (the server was down), with no idle connection left to lend.
    pool.connection_class.unreachable = True
    idle = pool.getconn()
    started = time.monotonic()
    pooled_wrapper.connect()
    assert time.monotonic() - started < 2, "no wait for the pool's 5 s timeout"
    assert pooled_wrapper.around_pool and pooled_wrapper.pool is None
    assert getattr(pooled_wrapper.connection, "_pool", None) is None
    assert _backend_pid(pooled_wrapper) != pooled_pid, "a connection of its own"
    assert pool.closed, "the server answered: the pool stuck in its reconnect backoff is replaced"
    fresh = pooled_wrapper.process_pool
    assert fresh is not pool and not fresh.connection_class.unreachable
    around = pooled_wrapper.connection
    pooled_wrapper.close()
    assert around.closed, "closed, not handed to a pool it never came from"
    assert not pooled_wrapper.around_pool
    pool.putconn(idle)  # lent out before the replacement: a closed pool closes what it gets back
    assert idle.closed

    pooled_wrapper.connect()
    assert not pooled_wrapper.around_pool and pooled_wrapper.connection._pool is fresh


def test_an_idle_pooled_connection_is_still_lent_while_the_pool_cannot_add_one(pooled_wrapper):
    pool = pooled_wrapper.process_pool
    pool.open()
    pool.wait(timeout=10)  # its one connection is there
    pool.connection_class.unreachable = True  # e.g. "too many clients" when it tried to grow
    pooled_wrapper.connect()
    assert not pooled_wrapper.around_pool and pooled_wrapper.connection._pool is pool
    assert not pool.closed
