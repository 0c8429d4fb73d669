import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from aihelper.core.embedded_db import EmbeddedDatabaseError, start_server, stop_server
from aihelper.core.embedded_state import holder_pids, server_answers, server_state

# The exit status of `status` for a server that is not running, as init scripts use it.
NOT_RUNNING = 3


class Command(BaseCommand):
    help = (
        "Start, stop or show the embedded PostgreSQL (used when DATABASE_URL is not set). `stop` leaves a marker "
        "so that no process of ours restarts it; `start` (or `make run`) removes it. A crashed server is "
        "restarted by the running app itself."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, action, **options):
        database = settings.DATABASES["default"]
        if not database.get("EMBEDDED_PGDATA"):
            raise CommandError("DATABASE_URL is set: the database is external, and this command only manages the "
                               "embedded server.")
        pgdata = Path(database["EMBEDDED_PGDATA"]).expanduser().resolve()
        try:
            if action == "start":
                server = start_server(pgdata, dbname=database["EMBEDDED_DBNAME"])
                self.stdout.write(f"Embedded PostgreSQL in {pgdata} is running (socket {server.socket_dir}).")
            elif action == "stop":
                before = stop_server(pgdata, by="manage.py embedded_db stop")
                done = "stopped" if before.running else f"was not running ({before.detail})"
                self.stdout.write(f"Embedded PostgreSQL in {pgdata} {done}; it stays stopped until "
                                  "`manage.py embedded_db start` or `make run`.")
            else:
                self._status(pgdata)
        except EmbeddedDatabaseError as exc:
            raise CommandError(str(exc)) from exc

    def _status(self, pgdata: Path) -> None:
        state = server_state(pgdata)
        answering = ""
        if state.running:
            answering = ", accepting connections" if server_answers(state.socket_dir) else ", not answering yet"
        self.stdout.write(f"Embedded PostgreSQL in {pgdata}: {state.detail}{answering}")
        if state.socket_dir:
            self.stdout.write(f"Socket directory: {state.socket_dir}")
        self.stdout.write(f"Processes attached: {', '.join(map(str, holder_pids(pgdata))) or 'none'}")
        if state.stopped_on_purpose:
            self.stdout.write(f"Marker: {state.stopped_on_purpose}; `manage.py embedded_db start` or `make run` "
                              "starts it again.")
        if not state.running:
            sys.exit(NOT_RUNNING)
