"""Click tracking under load over real HTTP (issue 5), against a same-run baseline endpoint.

    .venv/bin/python benchmarks/tracking_load.py [--duration 30] [--quick] [--phases both|closed|open]
                                                 [--offered-rps N] [--workers N --threads 4]

Starts gunicorn (gunicorn.conf.py, 127.0.0.1 on a free port) with benchmarks.bench_settings, on its own
database (EMBEDDED_PG_DBNAME=aihelper_bench_tracking, re-created on each run), throttles raised so they do
not interfere, and drives it with locust (requirements-bench.txt, installed into .venv when missing) in a
second process. Two phases on the same server: a **closed loop** (no think time: capacity, the req/s ratio)
and an **open loop** (Poisson arrivals at half the closed-loop tracking rate, or --offered-rps: latency
below saturation, where p99 measures the endpoint and not the queue). Rows of each phase, in this order so
that baseline and tracking see the same machine load:

* baseline c16 / tracking c16 / baseline c32 / tracking c32: every simulated user has its own token and
  clicks its own audit logs (a few clicks each, on the 3 runbooks each one presented);
* tracking c16 same log (closed loop only): 16 clients hammer ONE audit log (row-lock contention on
  SELECT ... FOR UPDATE).

The baseline is ``POST /bench/baseline`` (token auth, one INSERT of a ChatSession) on the same server.
``lost`` = acknowledged writes (201) missing from the database: for tracking, both the click in
``user_modifications["clicks"]`` and the ``clicked_link`` event must exist for every 201 event_id.
Targets: tracking >= 0.6x baseline req/s, p99 <= 50 ms, 0 lost. Only 127.0.0.1 is contacted; every
loop is bounded in count and time, and the server and load generator are stopped on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
REQUIREMENTS_BENCH = ROOT / "requirements-bench.txt"
LOG_DIR = ROOT / ".data" / "bench"
DEMO = ROOT / "runbooks" / "demo_data" / "demo_runbooks.jsonl"
HIGH_RATE = "1000000/min"

TARGET_RATIO = 0.6
TARGET_P99_MS = 50.0
CLICKS_PER_LOG = 4
# Upper bound of the request rate this 2-core machine can serve (closed loop 450-690/s of tracking); sizes
# the pool of audit logs so that each user moves on to a fresh audit log every CLICKS_PER_LOG clicks
# (users wrap around if it is exceeded).
RATE_CAP = 600
# Open loop at this share of the measured closed-loop capacity: a busy but not saturated server.
OPEN_LOOP_LOAD = 0.5
DEFAULT_OFFERED_RPS = 300.0


# --- Database -------------------------------------------------------------------------------------------


def django_setup(dbname: str) -> None:
    """Point Django at a fresh benchmark database (dropped and re-created: it is ours only), migrate it."""
    if not dbname.startswith("aihelper_bench_"):
        raise SystemExit(f"refusing to reset {dbname!r}: benchmark databases are named aihelper_bench_*")
    os.environ["EMBEDDED_PG_DBNAME"] = dbname
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "aihelper.settings"
    sys.path.insert(0, str(ROOT))
    import django
    import psycopg
    from django.conf import settings
    from psycopg import sql

    django.setup()
    from aihelper.core.embedded_db import ensure_server

    # Attach via the maintenance database so that ours can be dropped (nobody else connects to it).
    server = ensure_server(Path(settings.EMBEDDED_PG_DATA), dbname="postgres")
    with psycopg.connect(server.conninfo("postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def runbooks_plain(count: int = 6) -> list:
    """Demo runbooks written directly (no embedding: tracking needs none)."""
    from runbooks.models import Runbook

    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()][:count]
    return [
        Runbook.objects.create(
            slug=row["slug"], name=row["title"], description=row.get("description", ""),
            tags=row.get("tags", []), steps=row.get("steps", []),
        )
        for row in rows
    ]


def users_with_audit_logs(*, prefix: str, users: int, logs_per_user: int, runbooks: list) -> list[dict]:
    """Users with DRF tokens, one chat session each, and audit logs presenting 3 runbooks (via the service)."""
    from django.contrib.auth.models import User
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from aihelper.chat.models import ChatSession
    from audit.details import ActionDetails, PresentedSolution
    from audit.services.store import audit_log_create

    out = []
    for u in range(users):
        with transaction.atomic():
            user = User.objects.create_user(username=f"{prefix}-{u:03d}", password="bench-password-unused")
            token = Token.objects.create(user=user)
            session = ChatSession.objects.create(user=user, title="bench")
            logs = []
            for i in range(logs_per_user):
                chosen = [runbooks[(u + i + k) % len(runbooks)] for k in range(3)]
                solutions = tuple(
                    PresentedSolution(rank=rank, id=str(rb.pk), slug=rb.slug, title=rb.name,
                                      confidence=round(0.9 - 0.1 * rank, 2))
                    for rank, rb in enumerate(chosen, start=1)
                )
                log = audit_log_create(
                    user=user, session=session, query=f"bench alert {u}-{i}", response="bench answer",
                    details=ActionDetails(solutions=solutions, presentation_strategy="multiple_options"),
                    source="chat_page", llm_provider="offline",
                )
                logs.append({"id": str(log.pk), "session_id": str(session.pk),
                             "solutions": [{"id": s.id, "rank": s.rank} for s in solutions]})
        out.append({"token": token.key, "user_id": user.pk, "audit_logs": logs})
    return out


def _chunks(items: list, size: int = 5000):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def lost_clicks(accepted_ids: list[str], audit_log_ids: list[str]) -> tuple[int, int, int]:
    """(missing clicks, missing clicked_link events, clicks stored that were never acknowledged)."""
    from audit.models import AuditLog, RunbookInteractionEvent

    stored_clicks: set[str] = set()
    for chunk in _chunks(audit_log_ids, 2000):
        for mods in AuditLog.objects.filter(pk__in=chunk).values_list("user_modifications", flat=True):
            stored_clicks.update(click["event_id"] for click in (mods or {}).get("clicks", []))
    stored_events: set[str] = set()
    for chunk in _chunks(accepted_ids):
        stored_events.update(
            str(value) for value in RunbookInteractionEvent.objects.filter(
                event_id__in=chunk, event_type="clicked_link").values_list("event_id", flat=True)
        )
    accepted = set(accepted_ids)
    return len(accepted - stored_clicks), len(accepted - stored_events), len(stored_clicks - accepted)


def lost_events(accepted_ids: list[str]) -> int:
    from audit.models import RunbookInteractionEvent

    stored: set[str] = set()
    for chunk in _chunks(accepted_ids):
        stored.update(str(v) for v in RunbookInteractionEvent.objects.filter(event_id__in=chunk)
                      .values_list("event_id", flat=True))
    return len(set(accepted_ids) - stored)


def lost_sessions(accepted_ids: list[str]) -> int:
    from aihelper.chat.models import ChatSession

    stored = 0
    for chunk in _chunks(accepted_ids):
        stored += ChatSession.objects.filter(pk__in=chunk).count()
    return len(set(accepted_ids)) - stored


# --- Server and load generator ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_locust() -> Path:
    locust = VENV_BIN / "locust"
    if not locust.exists():
        print(f"installing the load generator: pip install -r {REQUIREMENTS_BENCH.name}", flush=True)
        subprocess.run([str(VENV_BIN / "pip"), "install", "-q", "-r", str(REQUIREMENTS_BENCH)], check=True,
                       timeout=600)
    return locust


@contextlib.contextmanager
def gunicorn_server(*, dbname: str, workers: int, threads: int, log_name: str, extra_env: dict | None = None):
    """gunicorn with the production config on 127.0.0.1:<free port>; stopped (whole process group) on exit."""
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{log_name}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.bench_settings",
        "EMBEDDED_PG_DBNAME": dbname,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "DEBUG": "0",
        "STATIC_MANIFEST": "0",
        "SECRET_KEY": "benchmark-only-secret-key",
        "HF_HUB_OFFLINE": "1",
        "ANTHROPIC_API_KEY": "",
        "LLM_PROVIDER": "offline",
        "THROTTLE_TRACKING": HIGH_RATE,
        "THROTTLE_EVENTS": HIGH_RATE,
        "THROTTLE_CHAT": HIGH_RATE,
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    env.pop("DATABASE_URL", None)
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "aihelper.asgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {process.returncode}; see {log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not answer /healthz within 90 s; see {log_path}")
            time.sleep(0.25)
        yield port, log_path
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def warm_up(port: int, token: str, paths: list[str], rounds: int = 4) -> None:
    """A few requests per worker so that imports and connections are not in the first measurement."""
    for _ in range(rounds):
        for path in paths:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", path, body="{}", headers={"Authorization": f"Token {token}",
                                                          "Content-Type": "application/json"})
            conn.getresponse().read()
            conn.close()


def warm_chat(port: int, token: str, requests: int) -> None:
    """Chat requests until every worker has loaded the embedding model (bounded: ``requests`` tries)."""
    for number in range(requests):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        body = json.dumps({"message": f"warm-up: disk almost full on host {number}"})
        conn.request("POST", "/api/ai-helper/query", body=body,
                     headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status != 200:
            raise SystemExit(f"chat warm-up answered {response.status}")


@dataclass
class LoadResult:
    label: str
    kind: str
    concurrency: int
    latencies_ms: list
    elapsed_s: float
    status: dict
    accepted_ids: list
    chat: list
    errors: list
    lost: str = ""
    ok_lost: bool = True

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else math.nan

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    @property
    def expected_status(self) -> int:
        return {"baseline": 201, "track": 201, "events": 201, "chat": 200}[self.kind]

    @property
    def server_errors(self) -> int:
        """5xx answers plus requests that got no answer at all (status 0: connection error or timeout)."""
        return sum(count for code, count in self.status.items() if code >= 500 or code == 0)

    @property
    def other_errors(self) -> int:
        return sum(count for code, count in self.status.items() if 0 < code < 500 and code != self.expected_status)

    @property
    def accepted(self) -> int:
        return self.status.get(self.expected_status, 0)

    def merge(self, other: LoadResult) -> LoadResult:
        """Slices of the same row measured in separate rounds: totals over the measured time."""
        status = dict(self.status)
        for code, count in other.status.items():
            status[code] = status.get(code, 0) + count
        return LoadResult(
            label=self.label, kind=self.kind, concurrency=self.concurrency,
            latencies_ms=self.latencies_ms + other.latencies_ms, elapsed_s=self.elapsed_s + other.elapsed_s,
            status=status, accepted_ids=self.accepted_ids + other.accepted_ids, chat=self.chat + other.chat,
            errors=(self.errors + other.errors)[:20],
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def run_locust(*, label: str, kind: str, port: int, users: list[dict], concurrency: int, duration: int,
               extra: dict | None = None) -> LoadResult:
    locust = ensure_locust()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        scenario_path = Path(tmp) / "scenario.json"
        out_path = Path(tmp) / "out.json"
        scenario = {"kind": kind, "users": users, "clicks_per_log": CLICKS_PER_LOG,
                    "max_requests_per_user": 2000 * duration, **(extra or {})}
        scenario_path.write_text(json.dumps(scenario), encoding="utf-8")
        env = {**os.environ, "LOADGEN_SCENARIO": str(scenario_path), "LOADGEN_OUT": str(out_path)}
        command = [
            str(locust), "-f", str(ROOT / "benchmarks" / "loadgen.py"), "--headless", "--only-summary",
            "-u", str(concurrency), "-r", str(concurrency), "-t", f"{duration}s", "--stop-timeout", "30",
            "--host", f"http://127.0.0.1:{port}", "--loglevel", "ERROR", "--exit-code-on-error", "0",
        ]
        completed = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                                   timeout=duration + 120)
        if completed.returncode != 0 or not out_path.exists():
            raise SystemExit(f"locust failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        raw = json.loads(out_path.read_text(encoding="utf-8"))
    return LoadResult(
        label=label, kind=kind, concurrency=concurrency, latencies_ms=raw["latencies_ms"],
        elapsed_s=(raw["end"] - raw["start"]) if raw["start"] else 0.0,
        status={int(code): count for code, count in raw["status"].items()},
        accepted_ids=raw["accepted_ids"], chat=raw["chat"], errors=raw["errors"],
    )


def run_rounds(plan: list[tuple], *, port: int, duration: int, rounds: int) -> dict[tuple, LoadResult]:
    """Run every row of ``plan`` for duration/rounds seconds, ``rounds`` times, interleaved.

    Interleaving spreads the other tenants' load on this shared machine evenly over the baseline and the
    measured rows, so their ratio is fair. A plan row is (label, kind, concurrency, users, extra), where
    ``users`` is a function of the round number (each round gets fresh audit logs).
    """
    merged: dict[tuple, LoadResult] = {}
    slice_s = max(1, round(duration / rounds))
    for number in range(rounds):
        for label, kind, concurrency, users, extra in plan:
            result = run_locust(label=label, kind=kind, port=port, users=users(number), concurrency=concurrency,
                                duration=slice_s, extra=extra)
            key = (label, concurrency)
            merged[key] = merged[key].merge(result) if key in merged else result
            print(f"  round {number + 1}/{rounds} {label} c{concurrency}: {result.requests} requests, "
                  f"{fmt(result.rps)} req/s, p99 {fmt(result.p99_ms)} ms, "
                  f"non-2xx {result.server_errors + result.other_errors}",
                  flush=True)
            for error in result.errors[:3]:
                print(f"    e.g. {error}", flush=True)
    return merged


def round_slice(users: list[dict], rounds: int):
    """users(number): the same users with the number-th share of their audit logs."""
    def pick(number: int) -> list[dict]:
        picked = []
        for user in users:
            logs = user["audit_logs"]
            size = max(1, len(logs) // rounds)
            share = logs[number * size:(number + 1) * size] or logs[-size:]
            picked.append({**user, "audit_logs": share})
        return picked
    return pick


def print_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(col, "")) for col in columns) + " |" for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


# --- This benchmark -----------------------------------------------------------------------------------------

DBNAME = "aihelper_bench_tracking"


def default_workers() -> int:
    """gunicorn.conf.py's default: two processes per usable core, at most 4 (GUNICORN_WORKERS overrides)."""
    return int(os.environ.get("GUNICORN_WORKERS", str(min(4, 2 * len(os.sched_getaffinity(0))))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="measured seconds per row (default 30)")
    parser.add_argument("--quick", action="store_true", help="5 s per row in one round: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices per row (default 3)")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GUNICORN_THREADS", "4")))
    parser.add_argument(
        "--phases", choices=("both", "closed", "open"), default="both",
        help="closed loop (capacity, ratio), open loop (latency below capacity), or both (default)",
    )
    parser.add_argument(
        "--offered-rps", type=float, default=0,
        help="open loop: requests/s the clients offer together (default: OPEN_LOOP_LOAD x the slower "
             f"closed-loop tracking rate of this run, or {DEFAULT_OFFERED_RPS:.0f} without a closed phase)",
    )
    args = parser.parse_args()
    duration = 5 if args.quick else max(1, min(args.duration, 600))
    rounds = 1 if args.quick else max(1, min(args.rounds, 10))
    phases = ["closed", "open"] if args.phases == "both" else [args.phases]
    ensure_locust()

    started = time.monotonic()
    django_setup(DBNAME)
    runbooks = runbooks_plain()
    pool = {}
    slices = rounds * len(phases)  # every slice of every phase clicks fresh audit logs
    for concurrency in (16, 32):
        logs = max(3 * slices, math.ceil(RATE_CAP * duration * len(phases) / concurrency / CLICKS_PER_LOG))
        pool[concurrency] = users_with_audit_logs(prefix=f"c{concurrency}", users=concurrency,
                                                  logs_per_user=logs, runbooks=runbooks)
    hot = users_with_audit_logs(prefix="hot", users=1, logs_per_user=1, runbooks=runbooks)
    # Warm-up traffic has its own users and audit logs, outside every measured row and every loss count.
    warm = users_with_audit_logs(prefix="warm", users=32, logs_per_user=20, runbooks=runbooks)
    print(f"set-up: {sum(len(u['audit_logs']) for p in pool.values() for u in p) + 1} audit logs, "
          f"{time.monotonic() - started:.0f} s; gunicorn {args.workers} workers x {args.threads} threads; "
          f"{duration} s per row in {rounds} interleaved round(s) per phase", flush=True)

    def plan(phase_index: int, offered: float) -> list[tuple]:
        def rate(concurrency: int) -> dict | None:
            return {"rate_per_user": offered / concurrency} if offered else None

        def fresh(concurrency: int):
            pick = round_slice(pool[concurrency], slices)
            return lambda number: pick(phase_index * rounds + number)

        rows = [
            ("baseline", "baseline", 16, lambda n: pool[16], rate(16)),
            ("tracking", "track", 16, fresh(16), rate(16)),
            ("baseline", "baseline", 32, lambda n: pool[32], rate(32)),
            ("tracking", "track", 32, fresh(32), rate(32)),
        ]
        # The one-row contention case is a closed loop only: offered hundreds of clicks/s, one row lock
        # (~100/s) builds a backlog of seconds that spills into the next rows' measurements.
        return rows if offered else [*rows, ("tracking, same audit log", "track", 16, lambda n: hot, None)]

    measured: dict[str, dict] = {}
    offered = 0.0
    with gunicorn_server(dbname=DBNAME, workers=args.workers, threads=args.threads,
                         log_name="tracking_load") as (port, log_path):
        warm_up(port, pool[16][0]["token"], ["/bench/baseline", "/api/ai-helper/track-choice"],
                rounds=2 * args.workers)
        # Every worker thread opens its connection and runs the click function once before measuring.
        for kind in ("baseline", "track"):
            run_locust(label="warm-up", kind=kind, port=port, users=warm, concurrency=32,
                       duration=2 if args.quick else 5)
        for index, phase in enumerate(phases):
            if phase == "open":
                capacity = [r.rps for (label, _), r in measured.get("closed", {}).items() if label == "tracking"]
                offered = args.offered_rps or (OPEN_LOOP_LOAD * min(capacity) if capacity else DEFAULT_OFFERED_RPS)
                print(f"open loop: {offered:.0f} requests/s offered per row, Poisson arrivals"
                      + (f" ({OPEN_LOOP_LOAD:.0%} of the closed-loop tracking rate)" if capacity and not
                         args.offered_rps else ""), flush=True)
            else:
                print("closed loop: no think time (each client sends when answered)", flush=True)
            measured[phase] = run_rounds(plan(index, offered if phase == "open" else 0.0), port=port,
                                         duration=duration, rounds=rounds)

    all_logs = {c: [log["id"] for user in pool[c] for log in user["audit_logs"]] for c in pool}
    all_logs["hot"] = [hot[0]["audit_logs"][0]["id"]]
    for phase, results in measured.items():
        for (label, concurrency), r in results.items():
            if r.kind == "track":
                logs = all_logs["hot"] if "same" in label else all_logs[concurrency]
                missing_clicks, missing_events, _ = lost_clicks(r.accepted_ids, logs)
                r.lost = f"{missing_clicks} / {missing_events}"
                r.ok_lost = missing_clicks == 0 and missing_events == 0
                last = [name for name in phases if (label, concurrency) in measured[name]][-1]
                if phase == last:
                    # The phases click the same audit logs: stored but never acknowledged is over all of them.
                    every = [i for res in measured.values() if (label, concurrency) in res
                             for i in res[(label, concurrency)].accepted_ids]
                    unacked = lost_clicks(every, logs)[2]
                    if unacked:  # e.g. a client timed out after the commit: shown, not a loss
                        r.lost += f" (+{unacked} unacked)"
            else:
                missing = lost_sessions(r.accepted_ids)
                r.lost, r.ok_lost = str(missing), missing == 0

    for phase, results in measured.items():
        baseline_rps = {r.concurrency: r.rps for r in results.values() if r.kind == "baseline"}
        rows = []
        for r in results.values():
            ratio = r.rps / baseline_rps[r.concurrency] if r.kind == "track" else None
            rows.append({
                "endpoint": r.label, "conc.": r.concurrency, "requests": r.requests, "req/s": fmt(r.rps),
                "ratio": fmt(ratio, 2) if ratio is not None else "1.00 (ref)", "p50 ms": fmt(r.p50_ms),
                "p99 ms": fmt(r.p99_ms), "5xx": r.server_errors, "other non-2xx": r.other_errors,
                "accepted": r.accepted, "lost": r.lost,
            })
        title = "closed loop (capacity)" if phase == "closed" else f"open loop, {offered:.0f} req/s offered"
        print(f"\n{title}\n")
        print_table(rows, list(rows[0]))
    print()
    print("lost (tracking) = 201 event_ids missing from user_modifications clicks / missing clicked_link events;"
          " 5xx includes requests with no answer")
    for verdict in verdicts(measured, offered):
        print(verdict)
    print(f"server log: {log_path.relative_to(ROOT)}; total {time.monotonic() - started:.0f} s")
    return 0


def verdicts(measured: dict[str, dict], offered: float = 0.0) -> list[str]:
    """The issue's targets per concurrency: the req/s ratio is a capacity figure (closed loop); p99 is read
    below capacity (open loop) where it measures the endpoint, not the queue, and only counts if the row
    kept up with the offered rate (>= 95 %); 0 lost and no 5xx anywhere."""
    lines = []
    for concurrency in (16, 32):
        rows = {phase: results.get(("tracking", concurrency)) for phase, results in measured.items()}
        baselines = {phase: results.get(("baseline", concurrency)) for phase, results in measured.items()}
        checks, parts = [], []
        if rows.get("closed"):
            ratio = rows["closed"].rps / baselines["closed"].rps
            checks.append(ratio >= TARGET_RATIO)
            parts.append(f"ratio {fmt(ratio, 2)} (>= {TARGET_RATIO}, closed loop)")
        else:
            parts.append("ratio not measured (no closed-loop phase)")
        latency = rows.get("open") or rows.get("closed")
        loop = "open loop" if rows.get("open") else "closed loop: queueing time at saturation"
        if rows.get("open"):
            kept_up = rows["open"].rps >= 0.95 * offered
            checks.append(kept_up)
            parts.append(f"{fmt(rows['open'].rps)} of {offered:.0f} req/s offered served (>= 95 %)")
        checks.append(latency.p99_ms <= TARGET_P99_MS)
        parts.append(f"p99 {fmt(latency.p99_ms)} ms (<= {TARGET_P99_MS:.0f}, {loop})")
        lost = " + ".join(r.lost for r in rows.values())
        errors = sum(r.server_errors for r in rows.values())
        checks += [all(r.ok_lost for r in rows.values()), errors == 0]
        parts += [f"lost {lost} (0)", f"5xx {errors} (0)"]
        lines.append(f"tracking c{concurrency}: " + ", ".join(parts) + f": {'MET' if all(checks) else 'MISSED'}")
    hot = [row for results in measured.values() if (row := results.get(("tracking, same audit log", 16)))]
    if not hot:
        return lines
    lines.append(
        "tracking, same audit log c16 (contention, informational: one row lock serialises the clicks): lost "
        + " + ".join(r.lost for r in hot if r)
        + f", p99 {' / '.join(fmt(r.p99_ms) for r in hot if r)} ms"
    )
    return lines


if __name__ == "__main__":
    sys.exit(main())
