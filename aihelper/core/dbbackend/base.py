"""PostgreSQL backend that starts the embedded server on first connection when configured.

Starting lazily keeps commands that never touch the database (``check``, ``help``, ruff) fast,
and makes every process that does connect attach to the shared server itself. When a connection to
the embedded server fails, the process restarts it if it died (``restart_if_down``); an external
``DATABASE_URL`` server is never touched.

With psycopg's pool (``DB_POOL_MAX_SIZE`` > 0: settings.py, docs/operations.md) the pool opens connections
itself, in its own threads; they go through ``PooledConnection.connect`` below, so a pooled connection starts,
attaches to and restarts the embedded server exactly like an unpooled one.

Through an outage the pool alone would make every request wait ``DB_POOL_TIMEOUT`` for its 503, and after the
server is back it would reconnect at its own backoff (seconds to minutes). So once the pool's last attempt to
connect has failed, a request connects around the pool, like an unpooled request: a 503 at once while the server
is down; when it is back, that request is answered and a new pool replaces the old one, whose connections are made
at once. Requests already waiting in the pool when the server went away wait its timeout for their 503.
"""

import threading
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from django.utils.asyncio import async_unsafe
from psycopg import IsolationLevel
from psycopg_pool import PoolClosed, PoolTimeout

from aihelper.core.embedded_db import EmbeddedDatabaseError, ensure_server, restart_if_down

# While the pool cannot connect, a request takes an idle pooled connection if there is one, without waiting.
NO_WAIT_SECONDS = 0.001


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
    # The current connection of this wrapper was opened around the pool (the pool could not connect): Django
    # then treats it as unpooled (``pool`` is None for it: configured on connect, closed rather than returned).
    around_pool = False

    @property
    def process_pool(self):
        """This process's pool (DB_POOL_MAX_SIZE > 0), whatever this wrapper's connection is; else None."""
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

    def close_pool(self):
        pool = self.process_pool
        if pool is not None:
            pool.close()
            self._connection_pools.pop(self.alias, None)

    def _close(self):
        try:
            return super()._close()
        finally:
            self.around_pool = False

    @async_unsafe
    def get_new_connection(self, conn_params):
        pool = self.process_pool
        self.around_pool = False
        if pool is not None:
            borrowed = _borrow(pool)
            if borrowed is not None:
                # Django's own pooled path from here: the isolation level of OPTIONS, if any.
                level = self.settings_dict["OPTIONS"].get("isolation_level")
                try:
                    self.isolation_level = IsolationLevel(level if level is not None else IsolationLevel.READ_COMMITTED)
                except ValueError:
                    pool.putconn(borrowed)
                    raise ImproperlyConfigured(f"Invalid transaction isolation level {level} specified.") from None
                if level is not None:
                    borrowed.isolation_level = self.isolation_level
                return borrowed
            self.around_pool = True
        connection = self._unpooled_connection(conn_params)
        if pool is not None:
            self._pool_replace(pool)
        return connection

    def _pool_replace(self, broken):
        """The server answers again while ``broken`` (the pool) still waits out its reconnect backoff (it grows to
        minutes, and until then it lends nothing): a new pool replaces it, whose connections are made at once.
        Connections of the old one still lent out are closed when handed back (Django returns a connection to the
        pool it came from, and a closed pool closes what it gets)."""
        with _POOL_REPLACE_LOCK:
            if self._connection_pools.get(self.alias) is broken:
                self._connection_pools.pop(self.alias)
                broken.close(timeout=0)
        self.process_pool.open(wait=False)

    def _unpooled_connection(self, conn_params):
        if not self.settings_dict.get("EMBEDDED_PGDATA"):
            return super().get_new_connection(conn_params)
        connect = super().get_new_connection
        return _embedded_connect(self.settings_dict, lambda **server: connect({**conn_params, **server}))


_POOL_REPLACE_LOCK = threading.Lock()


def _borrow(pool):
    """A connection from ``pool`` (PoolTimeout after its timeout: every connection lent out), or None when the
    pool cannot connect: its last attempt failed (the server is down or was restarted), or it was closed (replaced
    by another request). An idle connection is still taken then (a failed attempt to add one more, e.g. "too many
    clients", does not send the requests that idle connections can serve around the pool)."""
    pool.open()
    try:
        if pool.connection_class.unreachable:
            return pool.getconn(timeout=NO_WAIT_SECONDS)
        # One wait in the pool's queue, first come first served.
        return pool.getconn()
    except PoolTimeout:
        if pool.connection_class.unreachable:
            return None
        raise
    except PoolClosed:
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
