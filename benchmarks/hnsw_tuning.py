"""pgvector HNSW tuning: build time, index size, recall and latency per (m, ef_construction, ef_search).

    .venv/bin/python benchmarks/hnsw_tuning.py                 # 20k runbooks, full 3x3 build grid
    .venv/bin/python benchmarks/hnsw_tuning.py --n 10000 --grid quick

Runs on its own database ``aihelper_bench_hnsw`` (dropped and re-created each run, migrated like the
other benchmarks), local traffic only. Needs ../shared/data (skips with a reason when absent).

Data: the 108 public runbooks are imported and embedded as the app does; a few hundred more *real*
texts (each runbook's description, each step, each paragraph of its markdown body) are embedded with
the real model (runbooks.embeddings.get_embedder()). The remaining rows are variants of those vectors:
a convex mix of two real vectors (80/20) plus isotropic Gaussian noise (sigma 0.01-0.04 per dimension),
re-normalised, stored with a copy of the source runbook's text so the full-text columns are realistic.
Queries: the 49 dev alert queries embedded, plus noisy variants of them (sigma 0.02) up to --queries.

Ground truth: exact top 30 by cosine distance from the same query with index scans disabled (a
sequential scan), which is also the same-run latency baseline. The query is the app's vector leg
(runbooks.search: visible_runbooks(user), ORDER BY embedding <=> q LIMIT 30), compiled by the ORM:
for an operator (every enabled runbook visible) and for an engineer who sees ~10 % of the rows
(group restrictions), with hnsw.iterative_scan off and relaxed_order.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import CORPUS, DEV_QUERIES, ROOT, SHARED, django_setup, load_corpus  # noqa: E402

DBNAME = "aihelper_bench_hnsw"
LIMIT = 30  # SearchConfig.candidates
EF_SEARCH = (10, 20, 40, 80, 160)
GRIDS = {
    # pgvector refuses ef_construction < 2 * m, so m=32 starts at 64.
    "full": [(m, efc) for m in (8, 16, 32) for efc in (32, 64, 128) if efc >= 2 * m],
    "quick": [(8, 32), (16, 64), (16, 128), (32, 64)],
}
CURRENT = (16, 64)  # runbooks/models.py
VISIBLE_SHARE = 0.10


def percentile(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def recreate_database() -> None:
    """Drop and re-create this benchmark's own database (and only that one)."""
    import psycopg
    from psycopg import sql

    from aihelper.core.embedded_db import ensure_server

    pgdata = Path(os.environ.get("EMBEDDED_PG_DATA", str(ROOT / ".data" / "pg")))
    server = ensure_server(pgdata, dbname="postgres")
    with psycopg.connect(server.conninfo("postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))


# --------------------------------------------------------------------------------------------- data


def real_texts() -> list[tuple[str, str]]:
    """(source slug, text) for every description, step and markdown paragraph of the public corpus."""
    texts = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            parts = [item.get("description", "")] + [str(s) for s in item.get("steps", [])]
            parts += re.split(r"\n\s*\n", item.get("body_markdown", ""))
            for part in parts:
                part = part.strip()
                if len(part) >= 40 and not part.startswith("---"):
                    texts.append((item["slug"], part[:2000]))
    return list(dict.fromkeys(texts))


def build_runbooks(n: int, rng) -> None:
    """Import + embed the corpus, embed the extra real texts, add variants up to n rows, groups for RBAC."""
    from django.contrib.auth.models import Group
    from django.db import connection, transaction

    from runbooks.embeddings import get_embedder
    from runbooks.models import Runbook

    load_corpus()
    originals = {r.slug: r for r in Runbook.objects.all()}
    texts = real_texts()
    started = time.perf_counter()
    vectors = np.asarray(get_embedder().embed_documents([t for _, t in texts]), dtype=np.float32)
    print(f"embedded {len(texts)} extra real texts in {time.perf_counter() - started:.1f} s", flush=True)
    bases = [(slug, v) for (slug, _), v in zip(texts, vectors, strict=True)]
    bases += [(slug, np.asarray(r.embedding, dtype=np.float32)) for slug, r in originals.items()]

    rows = []
    for i in range(n - len(originals)):
        slug, vector = bases[i % len(bases)]
        if i >= len(bases):
            other = bases[rng.integers(len(bases))][1]
            vector = 0.8 * vector + 0.2 * other + rng.normal(0, rng.uniform(0.01, 0.04), vector.shape)
        vector = vector / np.linalg.norm(vector)
        source = originals[slug]
        rows.append(
            Runbook(
                slug=f"hnsw/{i:07d}",
                name=f"{source.name} {i}",
                description=source.description,
                tags=source.tags,
                steps=source.steps,
                embedding=vector.tolist(),
                embedding_model=source.embedding_model,
                embedding_hash="hnsw-variant",
            )
        )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS runbooks_embedding_hnsw")
    with transaction.atomic():
        Runbook.objects.bulk_create(rows, batch_size=2000)
    # RBAC: ~5 % unrestricted, ~5 % restricted to team-a (the reader's group), the rest to team-b.
    team_a, _ = Group.objects.get_or_create(name="team-a")
    team_b, _ = Group.objects.get_or_create(name="team-b")
    through = Runbook.allowed_groups.through
    links = []
    for pk in Runbook.objects.values_list("pk", flat=True):
        draw = rng.random()
        if draw < VISIBLE_SHARE / 2:
            continue
        links.append(through(runbook_id=pk, group_id=(team_a if draw < VISIBLE_SHARE else team_b).pk))
    through.objects.bulk_create(links, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE runbooks")
        cursor.execute(f"VACUUM ANALYZE {through._meta.db_table}")
    print(f"loaded {Runbook.objects.count()} runbooks in {time.perf_counter() - started:.1f} s", flush=True)


def query_vectors(count: int, rng) -> np.ndarray:
    from runbooks.embeddings import get_embedder

    with DEV_QUERIES.open(encoding="utf-8") as handle:
        texts = [json.loads(line)["query"] for line in handle if line.strip()]
    embedder = get_embedder()
    real = np.asarray([embedder.embed_query(t) for t in texts], dtype=np.float32)
    out = list(real)
    while len(out) < count:
        v = real[len(out) % len(real)] + rng.normal(0, 0.02, real.shape[1])
        out.append(v / np.linalg.norm(v))
    return np.asarray(out[:count], dtype=np.float32)


def readers():
    """(label, user): an operator (superuser) and an engineer in team-a who sees ~10 % of the rows."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from runbooks.selectors import operator_reader

    engineer, _ = get_user_model().objects.get_or_create(username="hnsw-engineer")
    engineer.groups.add(Group.objects.get(name="team-a"))
    return [("all visible", operator_reader()), ("10% visible", engineer)]


def vector_leg_sql(user, vector):
    """The SQL of runbooks.search.runbook_candidates' vector leg, compiled by the ORM."""
    from pgvector.django import CosineDistance

    from runbooks.selectors import visible_runbooks

    qs = (
        visible_runbooks(user)
        .filter(embedding__isnull=False)
        .annotate(distance=CosineDistance("embedding", vector.tolist()))
        .order_by("distance")
        .values_list("pk", "distance")[:LIMIT]
    )
    return qs.query.sql_with_params()


# ------------------------------------------------------------------------------------------ measure


def run_queries(compiled, settings: list[str]) -> tuple[list[list], list[float]]:
    """Each query in its own transaction with SET LOCAL settings; times the SELECT only."""
    from django.db import connection, transaction

    results, times = [], []
    with connection.cursor() as cursor:
        for sql, params in compiled:
            with transaction.atomic():
                for statement in settings:
                    cursor.execute(statement)
                started = time.perf_counter()
                cursor.execute(sql, params)
                rows = cursor.fetchall()
                times.append((time.perf_counter() - started) * 1000)
            results.append([pk for pk, _ in sorted(rows, key=lambda r: r[1])])
    return results, times


def recall(results, truth, k) -> float:
    scores = []
    for got, exact in zip(results, truth, strict=True):
        want = set(exact[:k])
        if want:
            scores.append(len(want & set(got[:k])) / len(want))
    return statistics.fmean(scores)


def plan_of(sql, params, settings) -> str:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        for statement in settings:
            cursor.execute(statement)
        cursor.execute("EXPLAIN (COSTS OFF) " + sql, params)
        return " / ".join(row[0].strip() for row in cursor.fetchall() if "Scan" in row[0] or "Limit" in row[0])


def size(relation: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [relation])
        return cursor.fetchone()[0]


def build_index(m: int, efc: int, maintenance_work_mem: str) -> tuple[float, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS runbooks_embedding_hnsw")
        cursor.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        started = time.perf_counter()
        cursor.execute(
            f"CREATE INDEX runbooks_embedding_hnsw ON runbooks USING hnsw (embedding vector_cosine_ops)"
            f" WITH (m = {int(m)}, ef_construction = {int(efc)})"
        )
        elapsed = time.perf_counter() - started
        cursor.execute("RESET maintenance_work_mem")
    return elapsed, size("runbooks_embedding_hnsw")


def md_table(columns, rows) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "–")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def tuning(queries, grid, maintenance_work_mem) -> None:
    compiled = {label: [vector_leg_sql(user, q) for q in queries] for label, user in readers()}
    exact = {}
    for label, items in compiled.items():
        run_queries(items[:20], ["SET LOCAL enable_indexscan = off"])  # warm the heap
        truth, times = run_queries(items, ["SET LOCAL enable_indexscan = off"])
        exact[label] = (truth, times)
        print(
            f"exact ({label}): p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms; "
            f"plan: {plan_of(*items[0], ['SET LOCAL enable_indexscan = off'])}",
            flush=True,
        )
    modes = [
        ("all visible", "off"),
        ("10% visible", "off"),
        ("10% visible", "relaxed_order"),
    ]
    rows = []
    for m, efc in grid:
        build_s, index_bytes = build_index(m, efc, maintenance_work_mem)
        print(f"m={m} ef_construction={efc}: built in {build_s:.1f} s, {index_bytes / 2**20:.1f} MiB", flush=True)
        run_queries(compiled["all visible"][:50], ["SET LOCAL hnsw.ef_search = 40"])  # warm the index
        for label, iterative in modes:
            truth, exact_times = exact[label]
            exact_p50 = percentile(exact_times, 50)
            for ef in EF_SEARCH:
                settings = [f"SET LOCAL hnsw.ef_search = {ef}", f"SET LOCAL hnsw.iterative_scan = {iterative}"]
                plan = plan_of(*compiled[label][0], settings)
                if (m, efc) == grid[0] and ef == 40:
                    print(f"  plan ({label}, iterative {iterative}): {plan}")
                results, times = run_queries(compiled[label], settings)
                rows.append(
                    {
                        "m": m,
                        "ef_c": efc,
                        "build s": f"{build_s:.1f}",
                        "index MiB": f"{index_bytes / 2**20:.1f}",
                        "visible": label,
                        "iterative": iterative,
                        "ef_search": ef,
                        "plan": "hnsw" if "runbooks_embedding_hnsw" in plan else "exact",
                        "rows": f"{statistics.fmean(len(r) for r in results):.1f}",
                        "R@10": f"{recall(results, truth, 10):.3f}",
                        "R@30": f"{recall(results, truth, 30):.3f}",
                        "p50 ms": f"{percentile(times, 50):.2f}",
                        "p95 ms": f"{percentile(times, 95):.2f}",
                        "exact p50 ms": f"{exact_p50:.1f}",
                        "p50 / exact": f"{percentile(times, 50) / exact_p50:.3f}",
                    }
                )
        print(md_table(list(rows[0]), rows[-len(modes) * len(EF_SEARCH) :]), flush=True)
    print("\n## HNSW grid (all builds)\n")
    print(md_table(list(rows[0]), rows))
    build_index(*CURRENT, maintenance_work_mem)  # leave the database as the migration made it


def quantisation(queries) -> None:
    """halfvec and binary quantisation at m=16/ef_construction=64, operator reader, vs the exact float top 30."""
    from django.db import connection

    vectors = ["[" + ",".join(f"{x:.7f}" for x in q) + "]" for q in queries]
    exact_sql = (
        "SELECT id, embedding <=> %s::vector FROM runbooks WHERE enabled AND embedding IS NOT NULL ORDER BY 2 LIMIT 30"
    )
    truth, _ = run_queries([(exact_sql, [v]) for v in vectors], ["SET LOCAL enable_indexscan = off"])
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(
            "CREATE INDEX hnsw_bench_halfvec ON runbooks USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        half_s = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute(
            "CREATE INDEX hnsw_bench_binary ON runbooks USING hnsw ((binary_quantize(embedding)::bit(384))"
            " bit_hamming_ops) WITH (m = 16, ef_construction = 64)"
        )
        bin_s = time.perf_counter() - started
    half_sql = (
        "SELECT id, embedding::halfvec(384) <=> %s::halfvec(384) FROM runbooks WHERE enabled"
        " AND embedding IS NOT NULL ORDER BY 2 LIMIT 30"
    )
    rows = []
    for ef in (40, 80, 160):
        settings = [f"SET LOCAL hnsw.ef_search = {ef}"]
        results, times = run_queries([(half_sql, [v]) for v in vectors], settings)
        plan = plan_of(half_sql, [vectors[0]], settings)
        rows.append(
            {
                "index": "halfvec(384) cosine",
                "plan": "hnsw" if "hnsw_bench_halfvec" in plan else "exact",
                "build s": f"{half_s:.1f}",
                "index MiB": f"{size('hnsw_bench_halfvec') / 2**20:.1f}",
                "ef_search": ef,
                "re-rank": "–",
                "R@10": f"{recall(results, truth, 10):.3f}",
                "R@30": f"{recall(results, truth, 30):.3f}",
                "p50 ms": f"{percentile(times, 50):.2f}",
                "p95 ms": f"{percentile(times, 95):.2f}",
            }
        )
    for k in (100, 300):
        bin_sql = (
            "SELECT id, d FROM (SELECT id, embedding <=> %s::vector AS d FROM runbooks WHERE enabled"
            " AND embedding IS NOT NULL ORDER BY binary_quantize(embedding)::bit(384) <~>"
            f" binary_quantize(%s::vector) LIMIT {k}) AS candidates ORDER BY d LIMIT 30"
        )
        settings = [f"SET LOCAL hnsw.ef_search = {k}"]
        results, times = run_queries([(bin_sql, [v, v]) for v in vectors], settings)
        plan = plan_of(bin_sql, [vectors[0], vectors[0]], settings)
        rows.append(
            {
                "index": "binary_quantize bit(384) hamming",
                "plan": "hnsw" if "hnsw_bench_binary" in plan else "exact",
                "build s": f"{bin_s:.1f}",
                "index MiB": f"{size('hnsw_bench_binary') / 2**20:.1f}",
                "ef_search": k,
                "re-rank": f"top {k} by float cosine",
                "R@10": f"{recall(results, truth, 10):.3f}",
                "R@30": f"{recall(results, truth, 30):.3f}",
                "p50 ms": f"{percentile(times, 50):.2f}",
                "p95 ms": f"{percentile(times, 95):.2f}",
            }
        )
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX hnsw_bench_halfvec")
        cursor.execute("DROP INDEX hnsw_bench_binary")
    print("\n## Quantisation (m=16, ef_construction=64, all visible; recall vs exact float top 30)\n")
    print(md_table(list(rows[0]), rows))


def runbook_sizes() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_relation_size(c.oid), (SELECT count(*) FROM runbooks)
              FROM pg_class c
             WHERE c.oid = 'runbooks'::regclass
                OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'runbooks'::regclass)
                OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'runbooks'::regclass)
             ORDER BY 2 DESC
            """
        )
        rows = cursor.fetchall()
    count = rows[0][2]
    print(f"\n## Runbook storage ({count} rows)\n")
    print(
        md_table(
            ["relation", "MiB", "bytes per runbook"],
            [{"relation": r[0], "MiB": f"{r[1] / 2**20:.1f}", "bytes per runbook": round(r[1] / count)} for r in rows],
        )
    )


def event_bytes(n_events: int, rng) -> None:
    """Insert a realistic sample of events (COPY, triggers and foreign keys on) and measure bytes per event."""
    import datetime as dt

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from audit.models import AuditLog
    from runbooks.models import Runbook

    user = get_user_model().objects.get(username="hnsw-engineer")
    runbook_ids = list(Runbook.objects.values_list("pk", flat=True)[:300])

    def totals():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree("
                "'runbook_interaction_events') UNION ALL SELECT pg_total_relation_size("
                "'runbook_interaction_event_ids') UNION ALL SELECT pg_total_relation_size('ai_helper_audit_logs')"
            )
            return [r[0] for r in cursor.fetchall()]

    before = totals()
    # Settled logs (3 days old) so refresh_analytics_facts rolls them up: ~4.2 events per log.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    logs = [
        AuditLog(
            user=user,
            created_at=start + dt.timedelta(seconds=i),
            query="Alertmanager failed to send 68% of notifications to msteams",
            ai_action_details={"presentation_strategy": "multiple_options", "experiment": None, "variant": None},
            user_modifications={"clicks": []},
            source="chat_page",
        )
        for i in range(n_events // 4)
    ]
    with transaction.atomic():
        AuditLog.objects.bulk_create(logs, batch_size=5000)
    log_ids = [log.pk for log in logs]
    buffer = io.StringIO()
    written = 0
    for i, log_id in enumerate(log_ids):
        at = start + dt.timedelta(seconds=i)
        presented = [runbook_ids[j] for j in rng.choice(len(runbook_ids), 3, replace=False)]
        kinds = [("presented", r, rank) for rank, r in enumerate(presented, 1)]
        if rng.random() < 0.6:
            kinds += [("clicked_link", presented[0], 1), ("viewed_detail", presented[0], 1)]
        for kind, runbook_id, rank in kinds:
            if written >= n_events:
                break
            context = '{"path": "/chat/", "widget": false}' if kind != "presented" else "{}"
            buffer.write(
                f"{uuid.uuid4()}\t{at.isoformat()}\t{user.pk}\t{log_id}\t{runbook_id}\t{kind}\t{rank}\tchat_page"
                f"\t\t\t{context}\t{{}}\n"
            )
            written += 1
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY runbook_interaction_events (event_id, event_timestamp, user_id, audit_log_id, runbook_id,"
            " event_type, rank, source, experiment, variant, page_context, metadata) FROM STDIN"
        ) as copy:
            copy.write(buffer.getvalue())
    copy_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE runbook_interaction_events")
        cursor.execute("VACUUM ANALYZE runbook_interaction_event_ids")
        cursor.execute("VACUUM ANALYZE ai_helper_audit_logs")
    after = totals()
    started = time.perf_counter()
    call_command("refresh_analytics_facts", stdout=io.StringIO())
    facts_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM analytics_log_facts), pg_total_relation_size('analytics_log_facts'),"
            " (SELECT count(*) FROM analytics_pair_facts), pg_total_relation_size('analytics_pair_facts')"
        )
        log_facts, log_facts_bytes, pair_facts, pair_facts_bytes = cursor.fetchone()
    rows = [
        {
            "what": "event (partition heap + its 4 indexes)",
            "rows": written,
            "bytes per row": round((after[0] - before[0]) / written),
        },
        {
            "what": "event id claim (runbook_interaction_event_ids)",
            "rows": written,
            "bytes per row": round((after[1] - before[1]) / written),
        },
        {
            "what": "audit log (this sample's short query, no response text)",
            "rows": len(log_ids),
            "bytes per row": round((after[2] - before[2]) / len(log_ids)),
        },
        {"what": "analytics_log_facts", "rows": log_facts, "bytes per row": round(log_facts_bytes / max(1, log_facts))},
        {
            "what": "analytics_pair_facts",
            "rows": pair_facts,
            "bytes per row": round(pair_facts_bytes / max(1, pair_facts)),
        },
    ]
    print(
        f"\n## Event storage (COPY of {written} events with triggers: {written / copy_s:.0f} events/s; "
        f"refresh_analytics_facts over them: {facts_s:.1f} s)\n"
    )
    print(md_table(["what", "rows", "bytes per row"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="runbooks (default 20000)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="full")
    parser.add_argument("--maintenance-work-mem", default="256MB")
    parser.add_argument("--events", type=int, default=100_000, help="event sample for bytes per event (0: skip)")
    parser.add_argument("--skip-quantisation", action="store_true")
    args = parser.parse_args()

    if not DEV_QUERIES.is_file() or not list(CORPUS.glob("*.jsonl")):
        print(f"SKIP: ../shared/data is absent ({SHARED}); the public corpus and dev queries are needed.")
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aihelper.settings")
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ["EMBEDDED_PG_DBNAME"] = DBNAME
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    recreate_database()
    started = time.perf_counter()
    django_setup(DBNAME)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extversion, current_setting('max_parallel_maintenance_workers'), current_setting('shared_buffers')"
            " FROM pg_extension WHERE extname = 'vector'"
        )
        version, workers, shared = cursor.fetchone()
    print(
        f"pgvector {version}; max_parallel_maintenance_workers {workers}; shared_buffers {shared}; "
        f"maintenance_work_mem for builds {args.maintenance_work_mem}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rng = np.random.default_rng(7)
    build_runbooks(args.n, rng)
    queries = query_vectors(args.queries, rng)
    tuning(queries, GRIDS[args.grid], args.maintenance_work_mem)
    if not args.skip_quantisation:
        quantisation(queries)
    runbook_sizes()
    if args.events:
        event_bytes(args.events, rng)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
