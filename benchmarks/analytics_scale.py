"""Analytics at scale: 1M audit logs and 5M events (COPY) in a dedicated database; times each of the
dashboard's statements and the whole dashboard, and shows partition pruning in the plans.

    .venv/bin/python benchmarks/analytics_scale.py            # 1M / 5M (a few minutes to load, once)
    .venv/bin/python benchmarks/analytics_scale.py --small    # 50k / 250k
    .venv/bin/python benchmarks/analytics_scale.py --reload   # regenerate the data

The database is EMBEDDED_PG_DBNAME=aihelper_bench_analytics (migrated first), never the dev data.
Audit logs are spread over the last 180 days; the dashboard range is the last 30 days (the default of
the page), and the full 180 days are timed as well. Targets: each statement <= 1 s, dashboard <= 2 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DBNAME = "aihelper_bench_analytics"
DAYS = 180
SEED = 20260110


def django_setup() -> None:
    os.environ["EMBEDDED_PG_DBNAME"] = DBNAME
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aihelper.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


STRATEGIES = [  # (strategy, solutions presented, share)
    ("no_solutions", 0, 0.10),
    ("single_solution", 1, 0.25),
    ("primary_plus_one", 2, 0.25),
    ("multiple_options", 3, 0.30),
    ("experimental_options", 3, 0.10),
]
SOURCES = ["chat_page", "widget", "search_page", "alert_page"]
CLICK_BY_RANK = {1: 0.55, 2: 0.25, 3: 0.15}


def generate(n_logs: int, n_events: int) -> None:
    from django.contrib.auth.models import Group, User
    from django.db import connection, connections, transaction

    from audit.models import AuditLog
    from runbooks.models import Runbook

    rng = random.Random(SEED)
    print(f"generating {n_logs:,} audit logs and {n_events:,} events ...", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE ai_helper_audit_logs, runbook_interaction_events, runbook_interaction_event_ids CASCADE"
        )
    with transaction.atomic():
        Runbook.objects.filter(slug__startswith="bench/").delete()
        runbooks = Runbook.objects.bulk_create(
            [Runbook(slug=f"bench/runbook-{i:03d}", name=f"BenchRunbook{i:03d}") for i in range(300)]
        )
        secret, _ = Group.objects.get_or_create(name="bench-secret")
        for runbook in runbooks[::10]:
            runbook.allowed_groups.add(secret)
        users = [
            User.objects.get_or_create(username=f"bench-user-{i:03d}", defaults={"is_staff": i == 0})[0]
            for i in range(200)
        ]
    runbook_ids = [r.pk for r in runbooks]
    user_ids = [u.pk for u in users]
    now = dt.datetime.now(dt.UTC)
    first = now - dt.timedelta(days=DAYS)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT runbook_events_ensure_partition((date_trunc('month', %s::timestamptz AT TIME ZONE 'UTC')"
            " + make_interval(months => m))::date) FROM generate_series(0, 8) m",
            [first],
        )

    log_columns = [f.column for f in AuditLog._meta.concrete_fields]
    weights = [share for _, _, share in STRATEGIES]
    started = time.perf_counter()
    events_written = 0
    # Two connections: PostgreSQL runs one COPY at a time per connection.
    second = connections.create_connection("default")
    second.ensure_connection()
    raw, raw_events = connection.connection, second.connection
    with raw.cursor() as cursor, raw_events.cursor() as events_cursor:
        # The benchmark database only: skip the id-claim and foreign-key triggers while bulk loading.
        cursor.execute("SET session_replication_role = replica")
        events_cursor.execute("SET session_replication_role = replica")
        with (
            cursor.copy(f"COPY ai_helper_audit_logs ({', '.join(log_columns)}) FROM STDIN") as logs_copy,
            events_cursor.copy(
                "COPY runbook_interaction_events (event_id, event_timestamp, user_id, audit_log_id, runbook_id,"
                " event_type, rank, source, experiment, variant, page_context, metadata) FROM STDIN"
            ) as events_copy,
        ):
            span = (now - first).total_seconds()
            for i in range(n_logs):
                created = first + dt.timedelta(seconds=span * i / n_logs)
                strategy, k, _ = rng.choices(STRATEGIES, weights)[0]
                presented = rng.sample(runbook_ids, k)
                user_id = rng.choice(user_ids)
                source = rng.choice(SOURCES)
                variant = ("thresholds", rng.choice(["control", "low-threshold"])) if i % 3 == 0 else ("", "")
                log_id = uuid.uuid4()
                details = {
                    "solutions_presented": [
                        {"rank": r, "type": "runbook", "id": str(rb)} for r, rb in enumerate(presented, 1)
                    ],
                    "presentation_strategy": strategy,
                    "experiment": variant[0] or None,
                    "variant": variant[1] or None,
                }
                row = {
                    "id": log_id,
                    "user_id": user_id,
                    "session_id": None,
                    "created_at": created,
                    "query": "disk full on host",
                    "response": "",
                    "ai_action_details": json.dumps(details),
                    "user_modifications": '{"clicks": []}',
                    "source": source,
                    "llm_provider": "offline",
                    "llm_model": "",
                    "input_tokens": None,
                    "output_tokens": None,
                    "latency_ms": 900,
                    "degraded": False,
                    "error": "",
                }
                logs_copy.write_row([row[c] for c in log_columns])

                def emit(runbook_id, event_type, at, rank, *, _log=log_id, _user=user_id, _src=source, _v=variant):
                    events_copy.write_row(
                        (uuid.uuid4(), at, _user, _log, runbook_id, event_type, rank, _src, _v[0], _v[1], "{}", "{}")
                    )

                for rank, runbook_id in enumerate(presented, 1):
                    emit(runbook_id, "presented", created, rank)
                    events_written += 1
                    if rng.random() >= CLICK_BY_RANK[rank]:
                        continue
                    at = created + dt.timedelta(seconds=rng.expovariate(1 / 40))
                    emit(runbook_id, "clicked_link", at, rank)
                    events_written += 1
                    if rng.random() < 0.8:
                        at += dt.timedelta(seconds=rng.expovariate(1 / 10))
                        emit(runbook_id, "viewed_detail", at, rank)
                        events_written += 1
                        if rng.random() < 0.5:
                            at += dt.timedelta(seconds=rng.expovariate(1 / 60))
                            emit(runbook_id, "started_execution", at, rank)
                            at += dt.timedelta(seconds=rng.expovariate(1 / 300))
                            emit(runbook_id, "succeeded" if rng.random() < 0.8 else "failed", at, rank)
                            events_written += 2
                if i % 100_000 == 0 and i:
                    print(f"  {i:,} logs, {events_written:,} events, {time.perf_counter() - started:.0f} s", flush=True)
            # The rest: engineers browsing runbooks outside the helper (no audit log).
            filler = max(0, n_events - events_written)
            for j in range(filler):
                at = first + dt.timedelta(seconds=span * j / max(1, filler))
                events_copy.write_row(
                    (
                        uuid.uuid4(),
                        at,
                        rng.choice(user_ids),
                        None,
                        rng.choice(runbook_ids),
                        "viewed_detail",
                        None,
                        "search_page",
                        "",
                        "",
                        "{}",
                        "{}",
                    )
                )
            events_written += filler
        cursor.execute("SET session_replication_role = DEFAULT")
    second.close()
    print(f"loaded {n_logs:,} logs and {events_written:,} events in {time.perf_counter() - started:.0f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ai_helper_audit_logs")
        cursor.execute("ANALYZE runbook_interaction_events")


def loaded_counts() -> tuple[int, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM ai_helper_audit_logs), (SELECT count(*) FROM runbook_interaction_events)"
        )
        return cursor.fetchone()


def timed(function, repeat: int = 3) -> tuple[float, object]:
    durations, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations), result


def explain_pruning(filters) -> list[str]:
    """Run the funnel under EXPLAIN ANALYZE and list which event partitions its scans touched (with
    rollups, the live tail only: the last day's partition)."""
    from django.db import connection

    from analytics.sql.metrics import funnel

    captured = {}

    def capture(execute, sql, params, many, context):
        captured["sql"], captured["params"] = sql, params
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        funnel(filters)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + captured["sql"], captured["params"])
        plan = [row[0] for row in cursor.fetchall()]
    return [line for line in plan if "runbook_interaction_events" in line or "Subplans Removed" in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="50k audit logs / 250k events")
    parser.add_argument("--reload", action="store_true", help="regenerate even if the data is there")
    parser.add_argument("--no-live", action="store_true", help="skip the plain-SQL (no rollups) timings")
    args = parser.parse_args()
    n_logs, n_events = (50_000, 250_000) if args.small else (1_000_000, 5_000_000)
    django_setup()

    from django.contrib.auth.models import User
    from django.utils import timezone

    from analytics.models import FactsState, LogFact, PairFact
    from analytics.services.dashboard import analytics_dashboard, visible_runbook_ids_for
    from analytics.services.facts import analytics_facts_refresh, analytics_facts_settled_before
    from analytics.sql.common import metric_filter
    from analytics.sql.metrics import funnel, log_summary, pair_summary

    logs, events = loaded_counts()
    if args.reload or logs != n_logs or events < n_events:
        generate(n_logs, n_events)
        FactsState.objects.all().delete()
        LogFact.objects.all().delete()
        PairFact.objects.all().delete()
        logs, events = loaded_counts()
    print(f"database {DBNAME}: {logs:,} audit logs, {events:,} events")

    started = time.perf_counter()
    report = analytics_facts_refresh()
    print(
        f"rollup refresh: +{report.logs:,} logs, +{report.pairs:,} presentations"
        f" in {time.perf_counter() - started:.1f} s"
        f" (settled before {report.settled_before:%Y-%m-%d %H:%M})"
    )
    settled = analytics_facts_settled_before()
    started = time.perf_counter()
    analytics_facts_refresh()
    print(f"rollup refresh with nothing new: {time.perf_counter() - started:.2f} s")

    now = timezone.now()
    admin = User(username="bench-admin", is_superuser=True, is_staff=True)
    restricted = User.objects.get(username="bench-user-000")  # staff, not in bench-secret
    ranges = {"30 days": now - dt.timedelta(days=30), f"{DAYS} days": now - dt.timedelta(days=DAYS)}
    rows = []
    for label, start in ranges.items():
        live_filter = metric_filter(start=start, end=now)
        rollup_filter = metric_filter(start=start, end=now, facts_before=settled)
        for name, function in {
            "log_summary (every per-log metric, one statement)": lambda f: log_summary(f, now=now),
            "pair_summary (top_runbooks + click_rank_histogram)": lambda f: pair_summary(f),
            "funnel": lambda f: funnel(f),
        }.items():
            live = None if args.no_live else timed(lambda function=function, f=live_filter: function(f), repeat=2)[0]
            rollup = timed(lambda function=function, f=rollup_filter: function(f))[0]
            rows.append((label, name, live, rollup, 1.0))
        dash = timed(lambda start=start: analytics_dashboard(user=admin, start=start, end=now), repeat=3)[0]
        rows.append((label, "whole dashboard (superuser)", None, dash, 2.0))
        visible = len(visible_runbook_ids_for(restricted))
        dash = timed(lambda start=start: analytics_dashboard(user=restricted, start=start, end=now), repeat=3)[0]
        rows.append((label, f"whole dashboard (staff seeing {visible} runbooks)", None, dash, 2.0))

    print()
    print("| range | metric | plain SQL s | with rollups s | target s | ok |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for label, name, live, rollup, target in rows:
        live_text = "" if live is None else f"{live:.3f}"
        print(
            f"| {label} | {name} | {live_text} | {rollup:.3f} | {target:.0f} | {'yes' if rollup <= target else 'NO'} |"
        )

    print("\nPartition pruning (funnel, last 30 days; event partitions the plan scans):")
    for line in explain_pruning(metric_filter(start=ranges["30 days"], end=now, facts_before=settled)):
        print("   ", line.strip())


if __name__ == "__main__":
    main()
