"""Analytics at scale: 1M audit logs and 5M events over 365 days (COPY + generate_series) in a dedicated
database; times the whole dashboard for 7, 30, 90, 180 and 365 days for a superuser and a restricted
staff reader (median of 3 runs), each of its three statements, and the refresh after a day of new data.

    .venv/bin/python benchmarks/analytics_scale.py            # 1M / 5M (loaded once, then reused)
    .venv/bin/python benchmarks/analytics_scale.py --small    # 50k / 250k
    .venv/bin/python benchmarks/analytics_scale.py --reload   # regenerate the data
    .venv/bin/python benchmarks/analytics_scale.py --no-baseline   # skip the facts-only baseline

The database is EMBEDDED_PG_DBNAME=aihelper_bench_analytics (migrated first), never the dev data.
Targets (docs/analytics.md): dashboard <= 1 s for every range and reader, each statement <= 0.5 s, refresh
after a day <= 5 s. The baseline is the same dashboard without the daily rollups (facts + live tail, one run).
The last lines are, exactly: ``dashboard range=<N>d reader=<superuser|restricted> seconds=<x.xxx>`` per
range and reader, then ``metric_max seconds=<x.xxx>`` and ``refresh_day seconds=<x.xxx>``.
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
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
DBNAME = "aihelper_bench_analytics"
DAYS = 365
RANGES = (7, 30, 90, 180, 365)
CARRIED_SHARE = 0.1  # solutions carried over from earlier in the conversation
SEED = 20260110


def django_setup(dbname: str) -> None:
    os.environ["EMBEDDED_PG_DBNAME"] = dbname
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
            " + make_interval(months => m))::date) FROM generate_series(0, 13) m",
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
                        {"rank": r, "type": "runbook", "id": str(rb), "carried_over": rng.random() < CARRIED_SHARE}
                        for r, rb in enumerate(presented, 1)
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
            filler = max(0, n_events - events_written)
        # The rest: engineers browsing runbooks outside the helper (no audit log), generated in the database.
        events_cursor.execute(
            "INSERT INTO runbook_interaction_events (event_id, event_timestamp, user_id, audit_log_id, runbook_id,"
            " event_type, rank, source, experiment, variant, page_context, metadata)"
            " SELECT gen_random_uuid(), %(first)s + make_interval(secs => g * %(step)s),"
            " (%(users)s::int[])[1 + g %% %(n_users)s], NULL,"
            " (%(runbooks)s::uuid[])[1 + (g::bigint * 7919) %% %(n_runbooks)s], 'viewed_detail', NULL, 'search_page',"
            " '', '', '{}', '{}' FROM generate_series(0, %(filler)s - 1) g",
            {
                "first": first,
                "step": span / max(1, filler),
                "users": user_ids,
                "n_users": len(user_ids),
                "runbooks": runbook_ids,
                "n_runbooks": len(runbook_ids),
                "filler": filler,
            },
        )
        events_written += filler
        events_cursor.execute("SET session_replication_role = DEFAULT")
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


def refresh_day(settled) -> float:
    """Move the facts and rollup watermarks back by a day and time the refresh that brings them back."""
    from analytics.models import FactsState, RollupAudience
    from analytics.services.facts import analytics_facts_refresh
    from analytics.services.rollups import analytics_rollups_refresh

    FactsState.objects.filter(pk=1).update(settled_before=settled - dt.timedelta(days=1))
    for audience in RollupAudience.objects.all():
        audience.rolled_until -= dt.timedelta(days=1)
        audience.save(update_fields=["rolled_until"])
    started = time.perf_counter()
    report = analytics_facts_refresh()
    analytics_rollups_refresh(settled_before=report.settled_before)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="50k audit logs / 250k events")
    parser.add_argument("--reload", action="store_true", help="regenerate even if the data is there")
    parser.add_argument("--db", default=DBNAME, help=f"database name (default {DBNAME})")
    parser.add_argument("--rebuild-rollups", action="store_true", help="drop the daily rollups and build them again")
    parser.add_argument("--no-baseline", action="store_true", help="skip the facts-only (no rollups) timings")
    args = parser.parse_args()
    n_logs, n_events = (50_000, 250_000) if args.small else (1_000_000, 5_000_000)
    django_setup(args.db)

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.utils import timezone

    from analytics.models import FactsState, LogFact, PairFact, RollupAudience
    from analytics.services.dashboard import analytics_dashboard
    from analytics.services.facts import analytics_facts_refresh, analytics_facts_settled_before
    from analytics.services.rollups import analytics_rollups_refresh, rollup_span_for, visible_runbook_ids_for
    from analytics.sql.common import metric_filter
    from analytics.sql.funnel import funnel
    from analytics.sql.metrics import log_summary, pair_summary

    logs, events = loaded_counts()
    if args.reload or logs != n_logs or events < n_events:
        started = time.perf_counter()
        generate(n_logs, n_events)
        FactsState.objects.all().delete()
        LogFact.objects.all().delete()
        PairFact.objects.all().delete()
        RollupAudience.objects.all().delete()
        logs, events = loaded_counts()
        print(f"load: {time.perf_counter() - started:.0f} s")
    if args.rebuild_rollups:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE analytics_daily_logs, analytics_daily_pairs, analytics_daily_histograms,"
                " analytics_daily_runbooks, analytics_rollupaudience"
            )
    print(f"database {args.db}: {logs:,} audit logs, {events:,} events over {DAYS} days")

    started = time.perf_counter()
    report = analytics_facts_refresh()
    print(f"facts: +{report.logs:,} logs, +{report.pairs:,} presentations in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    rollups = analytics_rollups_refresh(settled_before=report.settled_before)
    print(
        f"daily rollups: {rollups.audiences} audiences, +{rollups.days} audience-days"
        f" in {time.perf_counter() - started:.1f} s"
    )
    settled = analytics_facts_settled_before()
    refresh = statistics.median(refresh_day(settled) for _ in range(3))

    zone = ZoneInfo(settings.TIME_ZONE)
    today = timezone.now().astimezone(zone).date()
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    admin = User(username="bench-admin", is_superuser=True, is_staff=True)
    restricted = User.objects.get(username="bench-user-000")  # staff, not in bench-secret
    readers = {"superuser": admin, "restricted": restricted}
    rows, lines, metric_max = [], [], 0.0
    for days in RANGES:
        start = end - dt.timedelta(days=days)
        for reader_name, reader in readers.items():
            visible = visible_runbook_ids_for(reader)
            filters = metric_filter(
                start=start,
                end=end,
                visible_runbook_ids=visible,
                facts_before=settled,
                rollup=rollup_span_for(start=start, end=end, visible_runbook_ids=visible),
            )
            for name, function in {
                "log_summary": lambda f: log_summary(f, now=timezone.now()),
                "pair_summary": pair_summary,
                "funnel": funnel,
            }.items():
                seconds = timed(lambda function=function, f=filters: function(f))[0]
                metric_max = max(metric_max, seconds)
                rows.append((days, reader_name, name, None, seconds))
            baseline = None
            if not args.no_baseline:
                baseline = timed(
                    lambda reader=reader, start=start: analytics_dashboard(
                        user=reader, start=start, end=end, rollups=False
                    ),
                    repeat=1,
                )[0]
            dash = timed(lambda reader=reader, start=start: analytics_dashboard(user=reader, start=start, end=end))[0]
            rows.append((days, reader_name, "whole dashboard", baseline, dash))
            lines.append(f"dashboard range={days}d reader={reader_name} seconds={dash:.3f}")

    print()
    print(
        "| range | reader | what | facts only s (1 run) | with daily rollups s (median of 3) | ratio | target s | ok |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for days, reader_name, name, baseline, seconds in rows:
        target = 1.0 if name == "whole dashboard" else 0.5
        base = "" if baseline is None else f"{baseline:.3f}"
        ratio = "" if baseline is None else f"{baseline / seconds:.1f}x"
        ok = "yes" if seconds <= target else "NO"
        print(f"| {days} days | {reader_name} | {name} | {base} | {seconds:.3f} | {ratio} | {target:g} | {ok} |")
    ok = "yes" if refresh <= 5 else "NO"
    print(f"| | | refresh after a day of new data (median of 3) | | {refresh:.3f} | | 5 | {ok} |")
    print()
    for line in lines:
        print(line)
    print(f"metric_max seconds={metric_max:.3f}")
    print(f"refresh_day seconds={refresh:.3f}")


if __name__ == "__main__":
    main()
