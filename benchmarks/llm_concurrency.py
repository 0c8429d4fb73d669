"""Many engineers at once (issue 17): LLM answers must not starve the rest of the server.

    .venv/bin/python benchmarks/llm_concurrency.py [--quick] [--duration 60] [--delta-delay 0.05] [--deltas 100]
                                                   [--concurrency 8,32,64] [--cap 8] [--workers N]

The production server (gunicorn.conf.py: uvicorn workers, aihelper.asgi) on 127.0.0.1, on its own database
(EMBEDDED_PG_DBNAME=aihelper_bench_llm, re-created on each run, the 30 demo runbooks embedded), with the real
``anthropic`` SDK pointed at the fake Messages API (tests/fake_anthropic.py, a process of its own) that streams
``--deltas`` deltas ``--delta-delay`` s apart (~5 s answers by default). Phases of ``--duration`` s (10 s with
--quick), in this order:

* baseline: the prober alone (no chat load), the same-run baseline;
* chat c8 / c32 / c64: that many chat clients, each a different user with its own token, asking
  ``POST /api/ai-helper/query`` again ``--think`` s (2) after each answer (the time to read it; 0 = back to
  back, which turns every busy answer into the next question at once) (the chat throttle raised);
* slow clients: 24 connections announcing a 1 MB body (over the limit) and 24 announcing 32 kB (within it),
  each sending one byte every 2 s, while 8 chat clients ask.

A prober (another process) measures ``GET /healthz``, ``POST /api/ai-helper/track-choice`` and a page load
(``GET /runbooks/<id>/``, logged in) in turn, about 10 requests/s, throughout. Per phase: answers (full and
busy), their latency, server errors (5xx or no answer), the prober's p50/p99, the instance's peak memory
(gunicorn master + workers, RSS) and peak database connections. Targets (issue 17): /healthz p99 <= 50 ms and
track-choice p99 <= 100 ms at 64 chat clients; full answers within LLM time + 1 s; busy answers within 1 s (the
busy p95 is also given for the answers asked after the first 5 s: every client asks its first question in the
same instant, a burst that finds every worker's query embeddings cold);
0 server errors. Only 127.0.0.1 is contacted; every loop is bounded in time; everything started is stopped.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_load  # noqa: E402 - the shared harness lives next to this script
import tracking_load as harness  # noqa: E402

DBNAME = "aihelper_bench_llm"
ROOT = harness.ROOT
PASSWORD = "bench-password-unused"  # what harness.users_with_audit_logs gives every user
METRICS_TOKEN = "bench-metrics-token"
SLOW_OVER, SLOW_WITHIN = 24, 24
TARGET_HEALTHZ_P99_MS, TARGET_TRACK_P99_MS = 50.0, 100.0
BURST_SECONDS = 5.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# --- Prober (a process of its own, so the load generator's threads do not delay its measurements) ------------


def _cookies(response) -> dict:
    jar = {}
    for name, value in response.getheaders():
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            jar[key] = rest.split(";", 1)[0]
    return jar


def _login(port: int, username: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/accounts/login/")
    response = conn.getresponse()
    page = response.read().decode()
    jar = _cookies(response)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = f"username={username}&password={PASSWORD}&csrfmiddlewaretoken={token}"
    conn.request("POST", "/accounts/login/", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={jar['csrftoken']}",
        "Referer": f"http://127.0.0.1:{port}/accounts/login/"})
    response = conn.getresponse()
    response.read()
    jar.update(_cookies(response))
    conn.close()
    if "sessionid" not in jar:
        raise SystemExit(f"prober: login as {username} failed ({response.status})")
    return jar


def probe(args) -> None:
    setup = json.loads(Path(args.probe).read_text())
    port, token, logs = setup["port"], setup["token"], setup["audit_logs"]
    jar = _login(port, setup["username"])
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    page = f"/runbooks/{logs[0]['solutions'][0]['id']}/"
    results: dict[str, list] = {"healthz": [], "track": [], "page": []}
    errors = {kind: 0 for kind in results}
    clicks = 0
    deadline = time.monotonic() + setup["duration"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < deadline:
        for kind in ("healthz", "track", "page"):
            if kind == "healthz":
                method, path, body, headers = "GET", "/healthz", None, {}
            elif kind == "page":
                method, path, body, headers = "GET", page, None, {"Cookie": cookie}
            else:
                log = logs[(clicks // 4) % len(logs)]
                solution = log["solutions"][clicks % len(log["solutions"])]
                clicks += 1
                body = json.dumps({"audit_log_id": log["id"], "event_id": str(uuid.uuid4()), "source": "chat_page",
                                   "choice_data": {"solution_chosen_id": solution["id"], "solution_chosen_type":
                                                   "runbook", "user_action": "clicked_link",
                                                   "solution_chosen_rank": solution["rank"]}})
                method, path = "POST", "/api/ai-helper/track-choice"
                headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status < 400
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            results[kind].append((time.perf_counter() - started) * 1000)
            errors[kind] += 0 if ok else 1
            time.sleep(0.1)
    Path(args.out).write_text(json.dumps({"latency_ms": results, "errors": errors}))


# --- Load (this process) ------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    chat_clients: int
    slow: bool = False
    answers: list = field(default_factory=list)  # (seconds, busy, asked at: seconds into the phase)
    started: float = 0.0  # time.monotonic() when its clients started
    server_errors: int = 0
    slow_413_ms: list = field(default_factory=list)
    probe: dict = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    peak_db_connections: int = 0


def chat_client(port: int, token: str, question: str, deadline: float, phase: Phase, lock: threading.Lock,
                once: bool = False, think: float = 0.0) -> None:
    body = json.dumps({"message": question})
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    while once or time.monotonic() < deadline:
        once = False
        asked_at = time.monotonic() - phase.started
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("POST", "/api/ai-helper/query", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
        except OSError:
            with lock:
                phase.server_errors += 1
            continue
        elapsed = time.perf_counter() - started
        with lock:
            if response.status != 200:
                phase.server_errors += 1
                time.sleep(0.5)
                continue
            busy = json.loads(data)["answer_markdown"].startswith("**The assistant is busy**")
            phase.answers.append((elapsed, busy, asked_at))
        time.sleep(min(think, max(0.0, deadline - time.monotonic())))


def slow_client(port: int, declared: int, deadline: float, phase: Phase, lock: threading.Lock) -> None:
    """Announce a body of ``declared`` bytes, then trickle one byte every 2 s until answered or the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"POST /api/ai-helper/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {declared}\r\n\r\n".encode())
        started = time.perf_counter()
        sock.settimeout(0.05)
        next_byte = time.monotonic()
        while time.monotonic() < deadline:
            try:
                head = sock.recv(64)
            except TimeoutError:
                head = None
            except OSError:
                return
            if head is not None:
                if head.startswith(b"HTTP/1.1 413"):
                    with lock:
                        phase.slow_413_ms.append((time.perf_counter() - started) * 1000)
                return
            if time.monotonic() >= next_byte:
                try:
                    sock.sendall(b"[")
                except OSError:
                    return
                next_byte = time.monotonic() + 2


def instance_rss_mb(master_pid: int) -> float:
    import psutil

    try:
        master = psutil.Process(master_pid)
        processes = [master, *master.children(recursive=True)]
        return sum(p.memory_info().rss for p in processes) / 1e6
    except psutil.Error:
        return float("nan")


def gunicorn_master_pid(port: int) -> int:
    """The master of the gunicorn started for this run (its bind is in its environment)."""
    import psutil

    for process in psutil.process_iter(["cmdline", "environ"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        environ = process.info["environ"] or {}
        if "gunicorn" in cmdline and environ.get("GUNICORN_BIND") == f"127.0.0.1:{port}":
            parent = process.parent()
            if parent is None or "gunicorn" not in " ".join(parent.cmdline()):
                return process.pid
    raise SystemExit("could not find the gunicorn master")


def db_connections() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [DBNAME])
        return cursor.fetchone()[0] - 1  # this process's own


def run_phase(phase: Phase, *, port: int, users: list[dict], prober: dict, questions: list[str], duration: float,
              master_pid: int, workdir: Path, think: float) -> None:
    setup_path, out_path = workdir / f"{phase.name}-probe.json", workdir / f"{phase.name}-result.json"
    setup_path.write_text(json.dumps({**prober, "port": port, "duration": duration}))
    probe_process = subprocess.Popen([sys.executable, __file__, "--probe", str(setup_path), "--out", str(out_path)],
                                     cwd=ROOT)
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    threads = [threading.Thread(target=chat_client, args=(port, users[i]["token"], questions[i % len(questions)],
                                                          deadline, phase, lock, False, think), daemon=True)
               for i in range(phase.chat_clients)]
    if phase.slow:
        threads += [threading.Thread(target=slow_client, args=(port, size, deadline, phase, lock), daemon=True)
                    for size in [1_000_000] * SLOW_OVER + [32_000] * SLOW_WITHIN]
    phase.started = time.monotonic()
    for thread in threads:
        thread.start()
    while time.monotonic() < deadline:
        phase.peak_rss_mb = max(phase.peak_rss_mb, instance_rss_mb(master_pid))
        phase.peak_db_connections = max(phase.peak_db_connections, db_connections())
        time.sleep(1.0)
    for thread in threads:
        thread.join(timeout=130)
    probe_process.wait(timeout=60)
    phase.probe = json.loads(out_path.read_text())


def row(phase: Phase, llm_seconds: float) -> str:
    full = [s for s, busy, _ in phase.answers if not busy]
    busy = [s for s, b, _ in phase.answers if b]
    # Every client asks its first question in the same instant: the burst (cold query embeddings on every worker
    # too) is reported apart from the steady state of the rest of the phase.
    busy_steady = [s for s, b, asked_at in phase.answers if b and asked_at >= BURST_SECONDS]
    lat = phase.probe["latency_ms"]
    errors = sum(phase.probe["errors"].values())

    def ms(kind: str) -> str:
        return f"{pct(lat[kind], 50):.0f} / {pct(lat[kind], 99):.0f}"

    over = f"{pct(full, 95) - llm_seconds:+.2f}" if full else "–"
    busy_p95 = f"{pct(busy, 95):.2f} / {pct(busy_steady, 95):.2f}" if busy else "–"
    slow = f"{len(phase.slow_413_ms)} × 413 in ≤ {max(phase.slow_413_ms):.0f} ms" if phase.slow_413_ms else "–"
    return (f"| {phase.name} | {phase.chat_clients} | {len(full)} | {len(busy)} | "
            f"{pct(full, 50):.2f} / {pct(full, 95):.2f} | {over} | {busy_p95} | {phase.server_errors} | "
            f"{ms('healthz')} | {ms('track')} | {ms('page')} | {errors} | {slow} | {phase.peak_rss_mb:.0f} | "
            f"{phase.peak_db_connections} |")


HEADER = ("| phase | chat clients | full answers | busy answers | full answer p50 / p95 s | p95 − LLM time s | "
          "busy p95 s (all / after the first 5 s) | server errors | /healthz p50 / p99 ms | "
          "track-choice p50 / p99 ms | page p50 / p99 ms | "
          "probe errors | over-limit slow bodies | peak RSS MB | peak DB conns |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def metrics_summary(port: int) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    response = conn.getresponse()
    text = response.read().decode()
    wanted = ("aihelper_llm_cap_rejections_total", "aihelper_answers_total", "aihelper_llm_errors_total",
              "aihelper_clicks_recorded_total", "aihelper_llm_calls_in_flight")
    return [line for line in text.splitlines() if line.startswith(wanted)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s phases")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--delta-delay", type=float, default=0.05)
    parser.add_argument("--deltas", type=int, default=100)
    parser.add_argument("--concurrency", default="8,32,64")
    parser.add_argument("--think", type=float, default=2.0,
                        help="seconds a chat client reads an answer before asking again (0: back to back)")
    parser.add_argument("--cap", type=int, default=8, help="LLM_MAX_IN_FLIGHT per worker process")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: gunicorn.conf.py)")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(args)
    duration = 10.0 if args.quick else args.duration
    levels = [int(c) for c in args.concurrency.split(",")]
    llm_seconds = args.deltas * args.delta_delay

    harness.django_setup(DBNAME)
    runbooks = reliability_load.runbooks_embedded()
    users = harness.users_with_audit_logs(prefix="chat", users=max(levels), logs_per_user=1, runbooks=runbooks)
    prober_user = harness.users_with_audit_logs(prefix="probe", users=1, logs_per_user=600, runbooks=runbooks)[0]
    prober = {"token": prober_user["token"], "audit_logs": prober_user["audit_logs"], "username": "probe-000"}
    questions = reliability_load.chat_queries()

    fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_anthropic.py"), "--delta-delay",
                             str(args.delta_delay), "--deltas", str(args.deltas)], stdout=subprocess.PIPE, text=True)
    try:
        fake_url = fake.stdout.readline().strip()
        workers = args.workers or int(os.environ.get("GUNICORN_WORKERS", "0")) or min(
            4, 2 * len(os.sched_getaffinity(0)))
        extra = {"LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "bench-key", "ANTHROPIC_BASE_URL": fake_url,
                 "ANTHROPIC_TIMEOUT": "30", "ANTHROPIC_MAX_RETRIES": "0", "LLM_MAX_IN_FLIGHT": str(args.cap),
                 "METRICS_TOKEN": METRICS_TOKEN, "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")}
        phases = [Phase("baseline", 0), *[Phase(f"chat c{c}", c) for c in levels], Phase("slow clients", 8, slow=True)]
        with harness.gunicorn_server(dbname=DBNAME, workers=workers, threads=1, log_name="llm_concurrency",
                                     extra_env=extra) as (port, log_path), tempfile.TemporaryDirectory() as tmp:
            master_pid = gunicorn_master_pid(port)
            # Warm up: every worker loads the embedding model on its first question; rounds of concurrent
            # questions reach them all (which worker accepts a connection is the kernel's choice).
            warm, lock = Phase("warm-up", 0), threading.Lock()
            for _ in range(3):
                threads = [threading.Thread(target=chat_client, args=(port, users[i]["token"], questions[i], 0.0,
                                                                      warm, lock, True)) for i in range(workers * 4)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=300)
            for phase in phases:
                print(f"phase {phase.name}: {duration:.0f} s ...", flush=True)
                run_phase(phase, port=port, users=users, prober=prober, questions=questions, duration=duration,
                          master_pid=master_pid, workdir=Path(tmp), think=args.think)
            summary = metrics_summary(port)
    finally:
        fake.terminate()
        fake.wait(timeout=10)

    print(f"\nLLM concurrency: {workers} uvicorn workers, cap {args.cap} LLM calls per worker ({args.cap * workers} "
          f"per instance), answers of {args.deltas} deltas x {args.delta_delay} s = {llm_seconds:.1f} s, "
          f"{duration:.0f} s phases, {args.think:g} s reading time after each answer; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(HEADER)
    for phase in phases:
        print(row(phase, llm_seconds))
    c64 = next((p for p in phases if p.chat_clients == max(levels) and not p.slow), None)
    if c64:
        lat = c64.probe["latency_ms"]
        base = phases[0].probe["latency_ms"]
        print(f"\nat {c64.chat_clients} chat clients: /healthz p99 {pct(lat['healthz'], 99):.0f} ms (target <= "
              f"{TARGET_HEALTHZ_P99_MS:.0f}; baseline {pct(base['healthz'], 99):.0f}), track-choice p99 "
              f"{pct(lat['track'], 99):.0f} ms (target <= {TARGET_TRACK_P99_MS:.0f}; baseline "
              f"{pct(base['track'], 99):.0f})")
    print("\n/metrics at the end:\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
