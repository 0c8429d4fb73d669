"""Alert storm (issue 19): Alertmanager groups posted to the production server while task workers recommend.

    .venv/bin/python benchmarks/alert_storm.py [--quick] [--alerts 2000] [--group-size 100] [--duration 60]
                                               [--workers 1,2] [--web-workers N]

The production server (gunicorn.conf.py: uvicorn workers, aihelper.asgi) on 127.0.0.1, on its own database
(EMBEDDED_PG_DBNAME=aihelper_bench_alerts, re-created on each run) with the public runbook corpus
(../shared/data/runbooks) and the 30 demo runbooks embedded. One receiver (``manage.py
create_alert_receiver``). Alerts are written from the corpus (alertname = a runbook's alert name, summary =
its description; half carry the ``runbook_url`` annotation kube-prometheus puts there) and from the public
eval queries (alertname + description, no runbook_url), each instance with its own pod label and fingerprint.

Phases, in this order, each posting ``--alerts`` alerts in ``--group-size`` groups spread evenly over
``--duration`` s, every group sent a second time half a phase after its first post (Alertmanager's repeat: no
new row, no new job):

* baseline: no worker runs (intake alone; its jobs are dropped afterwards) — the same-run baseline;
* 1 worker / 2 workers: that many ``manage.py worker`` processes (``WORKER_CONCURRENCY`` each), started and
  ready (model loaded) before the phase, run during it and until every alert of the phase is recommended (or
  ``--drain`` s pass).

Per phase: webhook p50/p99 (and the ratio to the baseline's), 5xx, alerts stored (must be all), recommended
(all, and none twice: each alert's job succeeded once in the workers' logs), receipt → recommendation p50/p95
(``recommended_at - first_received_at``), recommendations per second while draining. Only 127.0.0.1 is
contacted; every loop is bounded in time; everything started is stopped.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import http.client
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tracking_load as harness  # noqa: E402 - the shared harness lives next to this script

ROOT = harness.ROOT
SHARED = ROOT.parent / "shared" / "data"
CORPUS = SHARED / "runbooks"
EVAL = SHARED / "eval" / "alert_queries_dev.jsonl"
DBNAME = "aihelper_bench_alerts"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- Alerts -----------------------------------------------------------------------------------------------


def alert_templates() -> list[dict]:
    """(labels, annotations) templates: one per corpus runbook (half with runbook_url), one per eval query."""
    templates = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for index, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            record = json.loads(line)
            annotations = {"summary": record.get("description", ""), "description": record.get("description", "")}
            if index % 2 == 0 and record.get("source_url"):
                annotations["runbook_url"] = record["source_url"]
            templates.append({"alertname": record["title"], "annotations": annotations})
    for line in EVAL.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("alert_name"):
            templates.append(
                {"alertname": record["alert_name"], "annotations": {"description": record["query"][:2000]}}
            )
    return templates


def phase_groups(*, phase: str, alerts: int, group_size: int, templates: list[dict], now: str) -> list[dict]:
    rng = random.Random(f"alert-storm-{phase}")
    groups = []
    for group_index in range(alerts // group_size):
        members = []
        for member in range(group_size):
            template = rng.choice(templates)
            n = group_index * group_size + member
            labels = {
                "alertname": template["alertname"],
                "namespace": f"team-{group_index % 7}",
                "pod": f"{template['alertname'].lower()[:40]}-{phase}-{n:05d}",
                "severity": rng.choice(["warning", "critical"]),
                "job": "kube-state-metrics",
            }
            members.append({
                "status": "firing",
                "labels": labels,
                "annotations": template["annotations"],
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
                "fingerprint": f"{phase[:4]}{n:012x}",
            })
        groups.append({
            "version": "4",
            "groupKey": f'{{}}:{{phase="{phase}", group="{group_index}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "runbook-helper",
            "groupLabels": {"namespace": f"team-{group_index % 7}"},
            "commonLabels": {"job": "kube-state-metrics"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": members,
        })
    return groups


# --- Phases -----------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    workers: int
    latencies_ms: list[float] = field(default_factory=list)
    server_errors: int = 0
    other_errors: list[str] = field(default_factory=list)
    stored: int = 0
    recommended: int = 0
    twice: int = 0
    receipt_to_rec: list[float] = field(default_factory=list)
    drain_s: float = float("nan")
    span_s: float = float("nan")


def post(port: int, token: str, body: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/api/alerts/alertmanager", body=body,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - started) * 1000
    finally:
        conn.close()


def send_phase(*, port: int, token: str, groups: list[dict], duration: float, result: PhaseResult) -> None:
    """Each group at its slot (the new alerts arrive evenly over ``duration``), and again half a phase later (a
    repeat: the last repeats come after ``duration``), from a small pool of senders."""
    bodies = [json.dumps(group).encode() for group in groups]
    slot = duration / max(1, len(bodies))
    schedule = sorted(
        [(index * slot, body) for index, body in enumerate(bodies)]
        + [(index * slot + duration / 2, body) for index, body in enumerate(bodies)],
        key=lambda item: item[0],
    )
    start = time.monotonic()

    def fire(at: float, body: bytes) -> tuple[int, float]:
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return post(port, token, body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for status, ms in pool.map(lambda item: fire(*item), schedule):
            result.latencies_ms.append(ms)
            if status >= 500:
                result.server_errors += 1
            elif status != 200:
                result.other_errors.append(str(status))


@contextlib.contextmanager
def workers_running(count: int, log_name: str):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aihelper.settings",
        "EMBEDDED_PG_DBNAME": DBNAME,
        "SECRET_KEY": "benchmark-only-secret-key",
        "HF_HUB_OFFLINE": "1",
        "DEBUG": "0",
        "LOG_FORMAT": "json",
    }
    env.pop("DATABASE_URL", None)
    processes, paths = [], []
    for index in range(count):
        path = harness.LOG_DIR / f"{log_name}-{index}.log"
        paths.append(path)
        with open(path, "w", encoding="utf-8") as log:
            processes.append(subprocess.Popen(
                [str(harness.VENV_BIN / "python"), "manage.py", "worker", "--name", f"storm-{index}"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))
    try:
        # A worker in production runs long before the storm: wait until each has loaded the model.
        deadline = time.monotonic() + 120
        while not all("worker ready" in path.read_text(errors="replace") for path in paths):
            if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
                raise SystemExit(f"a worker did not get ready; see {paths}")
            time.sleep(0.2)
        yield paths
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def successes_per_alert(paths: list[Path]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if '"job_success"' not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                job = record.get("job") or {}
                if job.get("task_name") == "alerts.recommend":
                    counts[job.get("task_kwargs", {}).get("alert_id")] += 1
    return counts


def measure_phase(result: PhaseResult, *, prefix: str, drain: float) -> None:
    from alerts.models import Alert, RecommendationState

    phase_alerts = Alert.objects.filter(fingerprint__startswith=prefix)
    deadline = time.monotonic() + drain
    started = time.monotonic()
    while result.workers and time.monotonic() < deadline:
        if not phase_alerts.exclude(recommendation_state=RecommendationState.DONE).exists():
            break
        time.sleep(0.5)
    result.drain_s = time.monotonic() - started
    result.stored = phase_alerts.count()
    done = phase_alerts.filter(recommendation_state=RecommendationState.DONE)
    result.recommended = done.count()
    times = [pair for pair in done.values_list("first_received_at", "recommended_at") if pair[1] is not None]
    result.receipt_to_rec = [(recommended - received).total_seconds() for received, recommended in times]
    if times:
        # From the first alert received to the last recommendation stored: the phase's throughput window.
        result.span_s = (max(rec for _, rec in times) - min(received for received, _ in times)).total_seconds()


def drop_jobs() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="400 alerts over 20 s per phase")
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--group-size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--workers", default="1,2", help="worker processes per phase, comma-separated")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--drain", type=float, default=600.0, help="seconds to wait for the recommendations")
    args = parser.parse_args()
    if args.quick:
        args.alerts, args.duration = 400, 20.0
    if not EVAL.is_file() or not list(CORPUS.glob("*.jsonl")):
        print(f"SKIP: ../shared/data is absent ({SHARED}); the public corpus is needed.")
        return 0
    worker_counts = [int(value) for value in args.workers.split(",") if value.strip()]

    harness.django_setup(DBNAME)
    from django.core.management import call_command
    from django.utils import timezone

    from runbooks.demo import demo_runbooks_ensure
    from runbooks.importers import runbooks_import
    from runbooks.services import runbooks_embed

    report = runbooks_import(paths=sorted(CORPUS.glob("*.jsonl")))
    demo_runbooks_ensure()
    embedded = runbooks_embed()
    print(f"catalogue: {report.summary()}; {embedded.embedded} embedded", flush=True)
    out = io.StringIO()
    call_command("create_alert_receiver", "storm", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    templates = alert_templates()
    now = timezone.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    results = []
    harness.LOG_DIR.mkdir(parents=True, exist_ok=True)
    with harness.gunicorn_server(dbname=DBNAME, workers=args.web_workers, threads=1, log_name="alert_storm") as (
        port,
        _log,
    ):
        # Warm the web workers (imports, first connections) with a group that is not measured.
        warm = phase_groups(phase="warm", alerts=args.group_size, group_size=args.group_size, templates=templates,
                            now=now)
        for _ in range(4):
            post(port, token, json.dumps(warm[0]).encode())
        drop_jobs()
        for name, workers in [("baseline", 0), *[(f"w{count}", count) for count in worker_counts]]:
            result = PhaseResult(name=name, workers=workers)
            groups = phase_groups(phase=name, alerts=args.alerts, group_size=args.group_size, templates=templates,
                                  now=now)
            print(f"phase {name}: {args.alerts} alerts, {len(groups)} groups x2 over {args.duration:.0f} s, "
                  f"{workers} worker(s)", flush=True)
            with workers_running(workers, f"alert_storm-{name}") as paths:
                send_phase(port=port, token=token, groups=groups, duration=args.duration, result=result)
                measure_phase(result, prefix=name[:4], drain=args.drain)
            if workers:
                result.twice = sum(1 for count in successes_per_alert(paths).values() if count > 1)
            else:
                drop_jobs()
            results.append(result)

    base = pct(results[0].latencies_ms, 99)
    print()
    print("| phase | workers | posts | webhook p50 ms | webhook p99 ms | p99 / baseline | 5xx | stored | "
          "recommended | twice | receipt→rec p50 s | p95 s | drain after posting s | rec/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for result in results:
        rate = result.recommended / result.span_s if result.workers and result.span_s > 0 else float("nan")
        print(
            f"| {result.name} | {result.workers} | {len(result.latencies_ms)} | {pct(result.latencies_ms, 50):.1f} | "
            f"{pct(result.latencies_ms, 99):.1f} | {pct(result.latencies_ms, 99) / base:.2f} | "
            f"{result.server_errors} | {result.stored}/{args.alerts} | "
            f"{result.recommended if result.workers else '-'} | {result.twice if result.workers else '-'} | "
            f"{pct(result.receipt_to_rec, 50):.2f} | {pct(result.receipt_to_rec, 95):.2f} | "
            f"{result.drain_s:.1f} | {rate:.1f} |"
        )
        if result.other_errors:
            print(f"  {result.name}: non-200 answers {collections.Counter(result.other_errors)}")
    failed = [
        result.name
        for result in results
        if result.server_errors
        or result.stored != args.alerts
        or (result.workers and (result.recommended != args.alerts or result.twice))
    ]
    print("\nall stored, all recommended, none twice, 0 server errors:", "yes" if not failed else f"NO ({failed})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
