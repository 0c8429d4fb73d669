"""PostgreSQL backend that starts the embedded server on first connection when configured.

Starting lazily keeps commands that never touch the database (``check``, ``help``, ruff) fast,
and makes every process that does connect attach to the shared server itself. When a connection to
the embedded server fails, the process restarts it if it died (``restart_if_down``); an external
``DATABASE_URL`` server is never touched.

With psycopg's pool (``DB_POOL_MAX_SIZE`` > 0, opt-in: settings.py, docs/operations.md) the pool opens
connections itself, in its own threads; they go through ``PooledConnection.connect`` below, so a pooled
connection starts, attaches to and restarts the embedded server exactly like an unpooled one.
"""

from pathlib import Path

from django.db.backends.postgresql import base

from aihelper.core.embedded_db import EmbeddedDatabaseError, ensure_server, restart_if_down


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
    @property
    def pool(self):
        options = self.settings_dict["OPTIONS"].get("pool")
        created = bool(options) and self.alias not in self._connection_pools
        if created:
            options = {} if options is True else dict(options)
            options["connection_class"] = _pooled_connection_class(self.settings_dict)
            self.settings_dict["OPTIONS"]["pool"] = options
        return super().pool

    def get_new_connection(self, conn_params):
        if not self.settings_dict.get("EMBEDDED_PGDATA") or self.pool:
            return super().get_new_connection(conn_params)
        connect = super().get_new_connection
        return _embedded_connect(self.settings_dict, lambda **server: connect({**conn_params, **server}))


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
