"""PostgreSQL backend that starts the embedded server on first connection when configured.

Starting lazily keeps commands that never touch the database (``check``, ``help``, ruff) fast,
and makes every process that does connect attach to the shared server itself.
"""

from pathlib import Path

from django.db.backends.postgresql import base

from aihelper.core.embedded_db import ensure_server


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        pgdata = self.settings_dict.get("EMBEDDED_PGDATA")
        if pgdata:
            server = ensure_server(
                Path(pgdata),
                dbname=self.settings_dict["EMBEDDED_DBNAME"],
                cleanup_mode=self.settings_dict.get("EMBEDDED_CLEANUP", "stop"),
            )
            conn_params = {**conn_params, "host": str(server.socket_dir), "user": "postgres"}
        return super().get_new_connection(conn_params)
