"""PostgreSQL backend that starts the embedded server on first connection when configured.

Starting lazily keeps commands that never touch the database (``check``, ``help``, ruff) fast,
and makes every process that does connect attach to the shared server itself. When a connection to
the embedded server fails, the process restarts it if it died (``restart_if_down``); an external
``DATABASE_URL`` server is never touched.
"""

from pathlib import Path

from django.db.backends.postgresql import base

from aihelper.core.embedded_db import EmbeddedDatabaseError, ensure_server, restart_if_down


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        pgdata = self.settings_dict.get("EMBEDDED_PGDATA")
        if not pgdata:
            return super().get_new_connection(conn_params)
        try:
            server = ensure_server(
                Path(pgdata),
                dbname=self.settings_dict["EMBEDDED_DBNAME"],
                cleanup_mode=self.settings_dict.get("EMBEDDED_CLEANUP", "stop"),
            )
        except EmbeddedDatabaseError as exc:
            # A driver error, so Django raises its OperationalError: the documented 503, not a 500 page.
            raise self.Database.OperationalError(str(exc)) from exc
        try:
            return super().get_new_connection({**conn_params, "host": str(server.socket_dir), "user": "postgres"})
        except self.Database.OperationalError as exc:
            restart_if_down(Path(pgdata), reason=str(exc))
            raise
