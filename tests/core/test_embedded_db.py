"""The embedded PostgreSQL starts for several processes at once and survives a crashed holder."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

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


def test_two_processes_starting_the_embedded_server_at_once_both_work(tmp_path):
    pgdata = tmp_path / "pg"
    results = _start_many(pgdata, 2)
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip(), "pgvector should be available"
    # Both holders exited, so the server was stopped ("stop" cleanup mode).
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


def test_a_dead_holder_pid_left_by_a_crash_is_pruned_and_the_server_starts(tmp_path):
    pgdata = tmp_path / "pg"
    assert _start_many(pgdata, 1)[0].returncode == 0
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    (pgdata / ".handle_pids.json").write_text(json.dumps([dead_pid]))
    result = _start_many(pgdata, 1)[0]
    assert result.returncode == 0, result.stderr[-2000:]
    assert dead_pid not in json.loads((pgdata / ".handle_pids.json").read_text())


@pytest.mark.parametrize("count", [3])
def test_several_processes_on_a_fresh_data_dir(tmp_path, count):
    results = _start_many(tmp_path / "pg", count)
    assert [result.returncode for result in results] == [0] * count, [r.stderr[-1000:] for r in results]
