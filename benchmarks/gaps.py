"""Knowledge gaps at scale: 50k questions on planted topics (half covered by a runbook, half not) plus
one-off noise, vectors synthesised around the topics' centroids so the run measures the grouping, not
the model; then a small run of real questions (benchmarks/data/queries.jsonl) through the real model.

    .venv/bin/python benchmarks/gaps.py [--db b_gaps] [--questions 50000]

Reports the grouping time (median of 3), the whole report (SQL, grouping, nearest runbooks per group),
the share of planted uncovered topics that appear as a not-covered group (target >= 0.9) and the
covered topics reported as a gap (target 0); the baseline is the leader pass over every vector without
sampling (analytics/grouping.py step 1 alone). Results: docs/analytics.md (Knowledge gaps).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import statistics
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
from analytics_scale import django_setup  # benchmarks/ is the script's folder

ROOT = Path(__file__).resolve().parents[1]
TOPICS, COVERED, NOISE_SHARE, DIM = 60, 30, 0.05, 384
NOISE_SCALE = 0.045  # per dimension: a question is ~0.75 similar to its topic's centroid
SEED = 20261130


def unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


def planted(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, topic per vector (-1: noise), topic centroids); topic sizes log-uniform."""
    centroids = unit(rng.normal(size=(TOPICS, DIM)))
    weights = np.exp(rng.uniform(np.log(1), np.log(100), TOPICS))
    topical = int(n * (1 - NOISE_SHARE))
    labels = rng.choice(TOPICS, size=topical, p=weights / weights.sum())
    vectors = unit(centroids[labels] + rng.normal(scale=NOISE_SCALE, size=(topical, DIM)))
    noise = unit(rng.normal(size=(n - topical, DIM)))
    order = rng.permutation(n)
    return np.vstack([vectors, noise])[order], np.concatenate([labels, -np.ones(n - topical, int)])[order], centroids


def load(n: int, vectors: np.ndarray, centroids: np.ndarray, rng: np.random.Generator, start: dt.datetime) -> list:
    from django.contrib.auth.models import User
    from django.db import connection

    from audit.models import AuditLog
    from runbooks.models import Runbook

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE ai_helper_audit_logs, analytics_question_vectors CASCADE")
    Runbook.objects.filter(slug__startswith="gapbench/").delete()
    user, _ = User.objects.get_or_create(username="gapbench")
    runbooks = [
        Runbook(
            slug=f"gapbench/covered-{t:02d}",
            name=f"Covered topic {t}",
            embedding=unit(c + rng.normal(scale=0.01, size=DIM)).tolist(),
        )
        for t, c in enumerate(centroids[:COVERED])
    ] + [
        Runbook(slug=f"gapbench/other-{i:03d}", name=f"Other {i}", embedding=unit(rng.normal(size=DIM)).tolist())
        for i in range(100)
    ]
    Runbook.objects.bulk_create(runbooks)
    ids = [uuid.uuid4() for _ in range(n)]
    span = 30 * 86_400
    created = [start + dt.timedelta(seconds=span * i / n) for i in range(n)]
    details = json.dumps({"solutions_presented": [], "presentation_strategy": "no_solutions"})
    columns = [f.column for f in AuditLog._meta.concrete_fields]
    raw = connection.connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY ai_helper_audit_logs ({', '.join(columns)}) FROM STDIN") as copy:
            for i in range(n):
                row = {
                    "id": ids[i],
                    "user_id": user.pk,
                    "session_id": None,
                    "created_at": created[i],
                    "query": f"planted question {i}",
                    "response": "",
                    "ai_action_details": details,
                    "user_modifications": "{}",
                    "source": "chat_page",
                    "llm_provider": "offline",
                    "llm_model": "",
                    "input_tokens": None,
                    "output_tokens": None,
                    "latency_ms": 100,
                    "degraded": False,
                    "error": "",
                }
                copy.write_row([row.get(c) for c in columns])
        buffer = io.StringIO()
        for i in range(n):
            text = "[" + ",".join(f"{x:.6f}" for x in vectors[i]) + "]"
            buffer.write(f"{ids[i]}\t{created[i].isoformat()}\t{text}\tsynthetic\n")
        buffer.seek(0)
        with cursor.copy(
            "COPY analytics_question_vectors (audit_log_id, created_at, embedding, embedding_model) FROM STDIN"
        ) as copy:
            while chunk := buffer.read(1 << 20):
                copy.write(chunk)
        cursor.execute("ANALYZE ai_helper_audit_logs")
        cursor.execute("ANALYZE analytics_question_vectors")
    return ids


def topic_outcome(report_groups, members_topic) -> tuple[int, int]:
    """(uncovered topics found as a not-covered group, covered topics reported as a gap)."""
    found, false_gaps = set(), set()
    for group, topics in zip(report_groups, members_topic, strict=True):
        counts = Counter(topics)
        topic, count = counts.most_common(1)[0]
        if topic < 0 or count / len(topics) < 0.8 or group.covered:
            continue
        (false_gaps if topic < COVERED else found).add(topic)
    return len(found), len(false_gaps)


def real_questions() -> list[str]:
    from analytics.grouping import group_vectors
    from runbooks.embeddings import get_embedder

    rows = [json.loads(line) for line in (ROOT / "benchmarks/data/queries.jsonl").read_text().splitlines() if line]
    texts, gold = [r["query"] for r in rows], [r["gold_slugs"][0] if r["gold_slugs"] else "" for r in rows]
    started = time.perf_counter()
    vectors = np.array(get_embedder().embed_documents(texts), dtype=np.float32)
    embed = time.perf_counter() - started
    topics = {slug for slug, count in Counter(gold).items() if slug and count >= 3}
    lines = []
    for threshold in (0.5, 0.6, 0.7, 0.8):
        started = time.perf_counter()
        groups = group_vectors(vectors, threshold=threshold)
        seconds = time.perf_counter() - started
        found, pure = set(), 0
        for group in groups:
            slug, count = Counter(gold[i] for i in group.members).most_common(1)[0]
            pure += count / len(group.members) >= 0.8
            if slug in topics and count / len(group.members) >= 0.8:
                found.add(slug)
        timing = f"embedding {embed:.1f} s, grouping {seconds:.3f} s"
        result = (
            f"{len(groups)} groups, {pure} of them >= 80 % one runbook's questions; "
            f"{len(found)} of {len(topics)} runbooks with >= 3 questions found as a group"
        )
        label = f"real questions (benchmarks/data/queries.jsonl), real model, threshold {threshold}"
        lines.append(f"| {label} | {len(texts)} | {timing} | {result} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="aihelper_bench_gaps")
    parser.add_argument("--questions", type=int, default=50_000)
    args = parser.parse_args()
    django_setup(args.db)

    from django.contrib.auth.models import User

    from analytics.grouping import _leaders, group_vectors
    from analytics.services.gaps import gap_report

    rng = np.random.default_rng(SEED)
    vectors, labels, centroids = planted(args.questions, rng)
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=31)
    started = time.perf_counter()
    ids = load(args.questions, vectors, centroids, rng, start)
    print(f"loaded {args.questions:,} questions and their vectors in {time.perf_counter() - started:.1f} s")

    grouping = []
    for _ in range(3):
        started = time.perf_counter()
        group_vectors(vectors)
        grouping.append(time.perf_counter() - started)
    started = time.perf_counter()
    _leaders(unit(vectors.astype(np.float32)), 0.5)
    baseline = time.perf_counter() - started

    admin = User(username="gapbench-admin", is_superuser=True, is_staff=True)
    timings, report = [], None
    for _ in range(3):
        started = time.perf_counter()
        report = gap_report(user=admin, start=start, end=end, now=end + dt.timedelta(days=2), max_groups=10_000,
                            max_candidates=args.questions)  # every planted question, not the page's cap
        timings.append(time.perf_counter() - started)
    by_id = dict(zip(ids, labels, strict=True))
    members_topic = [[by_id[i] for i in group.member_ids] for group in report.groups]
    found, false_gaps = topic_outcome(report.groups, members_topic)
    uncovered = TOPICS - COVERED

    print()
    print("| run | questions | time | result |")
    print("| --- | ---: | --- | --- |")
    print(f"| leader pass over every vector (baseline) | {args.questions:,} | {baseline:.2f} s | - |")
    median = statistics.median(grouping)
    groups = f"{len(report.groups)} groups, {report.ungrouped:,} questions in none"
    print(
        f"| grouping (median of 3) | {args.questions:,} | {median:.2f} s ({baseline / median:.1f}x faster) | {groups} |"
    )
    outcome = (
        f"{found} of {uncovered} uncovered topics found ({found / uncovered:.2f}; target >= 0.9); "
        f"{false_gaps} covered topics reported as a gap (target 0)"
    )
    whole = statistics.median(timings)
    label = "whole report (SQL, grouping, nearest runbooks; median of 3)"
    print(f"| {label} | {args.questions:,} | {whole:.2f} s | {outcome} |")
    for line in real_questions():
        print(line)


if __name__ == "__main__":
    main()
