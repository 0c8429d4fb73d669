"""PostgreSQL backend that starts the embedded server on first connection when configured.

Starting lazily keeps commands that never touch the database (``check``, ``help``, ruff) fast,
and makes every process that does connect attach to the shared server itself. When a connection to
the embedded server fails, the process restarts it if it died (``restart_if_down``); an external
``DATABASE_URL`` server is never touched.

With psycopg's pool (``DB_POOL_MAX_SIZE`` > 0: settings.py, docs/operations.md) the pool opens connections
itself, in its own threads; they go through ``PooledConnection.connect`` below, so a pooled connection starts,
attaches to and restarts the embedded server exactly like an unpooled one.

Through an outage the pool alone would make every request wait ``DB_POOL_TIMEOUT`` for its 503, and after the
server is back it would reconnect at its own backoff (seconds to minutes). So a request borrows in short waits,
and once the pool's last attempt to connect has failed it connects around the pool, like an unpooled request:
a 503 at once while the server is down, an answer at once when it is back (which also sends the requests after
it to the pool again, whose new connections are then made at once).
"""

import time
from pathlib import Path

from django.db.backends.postgresql import base
from django.utils.asyncio import async_unsafe
from psycopg import IsolationLevel
from psycopg_pool import PoolTimeout

from aihelper.core.embedded_db import EmbeddedDatabaseError, ensure_server, restart_if_down

# How long a request waits for a pooled connection before it looks again whether the pool can connect at all.
BORROW_SLICE_SECONDS = 0.2


def _embedded_connect(settings_dict: dict, connect):
    """``connect(host=..., user=...)`` to the embedded server of ``settings_dict``, started first if need be."""
    pgdata = Path(settings_dict["EMBEDDED_PGDATA"])
    try:
        server = ensure_server(
            pgdata, dbname=settings_dict["EMBEDDED_DBNAME"], cleanup_mode=settings_dict.get("EMBEDDED_CLEANUP", "stop")
        )
    except EmbeddedDatabaseError as exc:
        # A driver error, so Django raises its OperationalError: the documented 503, not a 500 page.
        raise base.Database.OperationalError(str(exc)) from exc
    try:
        return connect(host=str(server.socket_dir), user="postgres")
    except base.Database.OperationalError as exc:
        restart_if_down(pgdata, reason=str(exc))
        raise


class DatabaseWrapper(base.DatabaseWrapper):
    # This thread's connection was opened around the pool (the pool could not connect): Django then treats it
    # as unpooled (``pool`` is None for it: configured on connect, closed rather than returned).
    around_pool = False

    @property
    def process_pool(self):
        """This process's pool (DB_POOL_MAX_SIZE > 0), whatever this thread's connection is; else None."""
        options = self.settings_dict["OPTIONS"].get("pool")
        created = bool(options) and self.alias not in self._connection_pools
        if created:
            options = {} if options is True else dict(options)
            options["connection_class"] = _pooled_connection_class(self.settings_dict)
            self.settings_dict["OPTIONS"]["pool"] = options
        return super().pool

    @property
    def pool(self):
        return None if self.around_pool else self.process_pool

    @async_unsafe
    def get_new_connection(self, conn_params):
        pool = self.process_pool
        self.around_pool = False
        if pool is not None:
            borrowed = _borrow(pool)
            if borrowed is not None:
                # Django's own pooled path from here: the isolation level of OPTIONS, if any.
                level = self.settings_dict["OPTIONS"].get("isolation_level")
                self.isolation_level = IsolationLevel(level) if level is not None else IsolationLevel.READ_COMMITTED
                if level is not None:
                    borrowed.isolation_level = self.isolation_level
                return borrowed
            self.around_pool = True
        connection = self._unpooled_connection(conn_params)
        if pool is not None:
            # The server answers again: the next requests borrow, and the pool makes its connections at once.
            pool.connection_class.unreachable = False
        return connection

    def _unpooled_connection(self, conn_params):
        if not self.settings_dict.get("EMBEDDED_PGDATA"):
            return super().get_new_connection(conn_params)
        connect = super().get_new_connection
        return _embedded_connect(self.settings_dict, lambda **server: connect({**conn_params, **server}))


def _borrow(pool):
    """A connection from ``pool`` within its timeout (PoolTimeout after it), or None as soon as the pool's last
    attempt to connect failed (the server is down or was just restarted)."""
    pool.open()
    deadline = time.monotonic() + pool.timeout
    while not pool.connection_class.unreachable:
        remaining = deadline - time.monotonic()
        try:
            return pool.getconn(timeout=max(0.001, min(BORROW_SLICE_SECONDS, remaining)))
        except PoolTimeout:
            if time.monotonic() >= deadline:
                raise
    return None


def _pooled_connection_class(settings_dict: dict):
    embedded = bool(settings_dict.get("EMBEDDED_PGDATA"))

    class PooledConnection(base.Database.Connection):
        """Opened by the pool's threads: starts/attaches to the embedded server like an unpooled connection, and
        remembers whether the last attempt failed."""

        unreachable = False  # the last attempt to connect failed (/readyz: an outage, not a saturated pool)

        @classmethod
        def connect(cls, conninfo: str = "", **kwargs):
            parent = super().connect
            try:
                if embedded:
                    connection = _embedded_connect(
                        settings_dict, lambda **server: parent(conninfo, **{**kwargs, **server})
                    )
                else:
                    connection = parent(conninfo, **kwargs)
            except base.Database.OperationalError:
                cls.unreachable = True
                raise
            cls.unreachable = False
            return connection

    return PooledConnection
