"""Reliability under load over real HTTP (issue 8): no server errors, no lost writes, p50/p99.

    .venv/bin/python benchmarks/reliability_load.py [--duration 60] [--quick] [--rounds 3]

Same harness as tracking_load.py (gunicorn with gunicorn.conf.py on 127.0.0.1, benchmarks.bench_settings,
locust in a second process, throttles raised), on its own database EMBEDDED_PG_DBNAME=aihelper_bench_reliability
(re-created on each run). Rows, interleaved in rounds so the shared machine's noise hits all of them alike:

* at concurrency 8, 32 and 64: the baseline (``POST /bench/baseline``: token auth, one INSERT), click
  tracking (``POST /api/ai-helper/track-choice``, each user on its own audit logs) and event ingestion
  (``POST /api/ai-helper/events``, batches of 10 events);
* chat (``POST /api/ai-helper/query``, offline LLM provider, the 30 demo runbooks embedded) at concurrency 8.

Goals: 0 server errors (5xx or no answer) and 0 lost writes: every acknowledged click has its click entry
and its clicked_link event, every accepted event id is stored, every answered chat has its audit log and one
``presented`` event per solution it returned. Only 127.0.0.1 is contacted; everything is bounded and stops.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tracking_load as harness  # noqa: E402 - the shared harness lives next to this script

DBNAME = "aihelper_bench_reliability"
CONCURRENCIES = (8, 32, 64)
CHAT_CONCURRENCY = 8
EVENTS_PER_BATCH = 10
# Sizes the audit-log pools (see tracking_load.RATE_CAP); users wrap around if they click faster.
RATE_CAP = 150


def runbooks_embedded() -> list:
    """The demo runbooks through the service, embedded (chat retrieval needs vectors)."""
    from django.db import transaction

    from runbooks.models import Runbook
    from runbooks.services import runbook_upsert, runbooks_embed

    rows = [json.loads(line) for line in harness.DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    with transaction.atomic():
        for row in rows:
            data = {"name": row["title"], "description": row.get("description", ""), "tags": row.get("tags", []),
                    "steps": row.get("steps", [])}
            runbook_upsert(slug=row["slug"], data=data)
    runbooks_embed()
    return list(Runbook.objects.filter(slug__in=[row["slug"] for row in rows]).order_by("slug"))


def chat_queries() -> list[str]:
    """Alert-like questions: the first sentence of each demo runbook's description."""
    rows = [json.loads(line) for line in harness.DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["description"].split(". ")[0] for row in rows if row.get("description")]


def chat_lost(answers: list[dict]) -> tuple[int, int]:
    """(answered chats without their audit log, answered chats whose presented events do not match)."""
    from django.db.models import Count

    from audit.models import AuditLog, RunbookInteractionEvent

    ids = [answer["audit_log_id"] for answer in answers]
    found: set[str] = set()
    presented: dict[str, int] = {}
    for chunk in harness._chunks(ids, 2000):
        found.update(str(pk) for pk in AuditLog.objects.filter(pk__in=chunk).values_list("pk", flat=True))
        for row in (RunbookInteractionEvent.objects.filter(audit_log_id__in=chunk, event_type="presented")
                    .values("audit_log_id").annotate(n=Count("event_id"))):
            presented[str(row["audit_log_id"])] = row["n"]
    missing = sum(1 for pk in ids if pk not in found)
    mismatched = sum(1 for answer in answers if presented.get(answer["audit_log_id"], 0) != answer["solutions"])
    return missing, mismatched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="measured seconds per row (default 60)")
    parser.add_argument("--quick", action="store_true", help="5 s per row in one round: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices per row (default 3)")
    parser.add_argument("--workers", type=int, default=harness.default_workers())
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GUNICORN_THREADS", "4")))
    args = parser.parse_args()
    duration = 5 if args.quick else max(1, min(args.duration, 600))
    rounds = 1 if args.quick else max(1, min(args.rounds, 10))
    harness.ensure_locust()

    started = time.monotonic()
    harness.django_setup(DBNAME)
    runbooks = runbooks_embedded()
    pool = {}
    for concurrency in CONCURRENCIES:
        logs = max(3 * rounds, math.ceil(RATE_CAP * duration / concurrency / harness.CLICKS_PER_LOG))
        pool[concurrency] = harness.users_with_audit_logs(prefix=f"r{concurrency}", users=concurrency,
                                                          logs_per_user=logs, runbooks=runbooks)
    chatters = harness.users_with_audit_logs(prefix="chat", users=CHAT_CONCURRENCY, logs_per_user=0,
                                             runbooks=runbooks)
    print(f"set-up: {len(runbooks)} runbooks, {sum(len(u['audit_logs']) for p in pool.values() for u in p)} "
          f"audit logs, {time.monotonic() - started:.0f} s; gunicorn {args.workers} workers x {args.threads} "
          f"threads; {duration} s per row in {rounds} interleaved round(s)", flush=True)

    events_extra = {"events_per_batch": EVENTS_PER_BATCH}
    plan = []
    for concurrency in CONCURRENCIES:
        users = pool[concurrency]
        plan += [
            ("baseline", "baseline", concurrency, lambda n, users=users: users, None),
            ("tracking", "track", concurrency, harness.round_slice(users, rounds), None),
            ("events", "events", concurrency, harness.round_slice(users, rounds), events_extra),
        ]
    plan.append(("chat (offline LLM)", "chat", CHAT_CONCURRENCY, lambda n: chatters, {"queries": chat_queries()}))

    with harness.gunicorn_server(dbname=DBNAME, workers=args.workers, threads=args.threads,
                                 log_name="reliability_load") as (port, log_path):
        # The first chat request of each worker loads the embedding model (seconds): keep it out of the rows.
        harness.warm_up(port, chatters[0]["token"], ["/bench/baseline", "/api/ai-helper/track-choice"],
                        rounds=2 * args.workers)
        harness.warm_chat(port, chatters[0]["token"], requests=4 * args.workers)
        results = harness.run_rounds(plan, port=port, duration=duration, rounds=rounds)

    rows, failures = [], []
    baseline_rps = {r.concurrency: r.rps for r in results.values() if r.kind == "baseline"}
    for (label, concurrency), r in results.items():
        if r.kind == "track":
            logs = [log["id"] for user in pool[concurrency] for log in user["audit_logs"]]
            missing_clicks, missing_events, unacked = harness.lost_clicks(r.accepted_ids, logs)
            lost = missing_clicks + missing_events
            lost_text = f"{missing_clicks} / {missing_events}" + (f" (+{unacked} unacked)" if unacked else "")
            writes = r.accepted
        elif r.kind == "events":
            lost = harness.lost_events(r.accepted_ids)
            lost_text, writes = str(lost), len(r.accepted_ids)
        elif r.kind == "chat":
            missing, mismatched = chat_lost(r.chat)
            lost = missing + mismatched
            lost_text, writes = f"{missing} / {mismatched}", len(r.chat)
        else:
            lost = harness.lost_sessions(r.accepted_ids)
            lost_text, writes = str(lost), len(r.accepted_ids)
        ratio = r.rps / baseline_rps[concurrency] if r.kind in ("track", "events") else None
        rows.append({
            "endpoint": r.label, "conc.": concurrency, "requests": r.requests, "req/s": harness.fmt(r.rps),
            "vs baseline": harness.fmt(ratio, 2) if ratio is not None else ("1.00 (ref)" if r.kind == "baseline"
                                                                             else "–"),
            "p50 ms": harness.fmt(r.p50_ms), "p99 ms": harness.fmt(r.p99_ms),
            "server errors": r.server_errors, "other non-2xx": r.other_errors,
            "writes acked": writes, "writes/s": harness.fmt(writes / r.elapsed_s if r.elapsed_s else math.nan),
            "lost": lost_text,
        })
        if r.server_errors or lost:
            failures.append(f"{label} c{concurrency}: {r.server_errors} server errors, lost {lost_text}")

    rows.sort(key=lambda row: (row["endpoint"].startswith("chat"), row["conc."]))
    print()
    harness.print_table(rows, list(rows[0]))
    print()
    print("writes acked: tracking = 201 clicks, events = accepted event ids (10 per request), chat = answers,"
          " baseline = rows. lost: tracking = missing clicks / missing clicked_link events; chat = missing audit"
          " logs / answers whose presented events differ from the solutions returned. server errors = 5xx or"
          " no answer.")
    print("goal (0 server errors, 0 lost): " + ("MET" if not failures else "MISSED: " + "; ".join(failures)))
    print(f"server log: {log_path.relative_to(harness.ROOT)}; total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
