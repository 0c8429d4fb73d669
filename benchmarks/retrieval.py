"""Retrieval benchmark: BM25-only, vector-only and our hybrid search, side by side, in one run.

    .venv/bin/python benchmarks/retrieval.py            # dev split quality + latency (108 runbooks)
    .venv/bin/python benchmarks/retrieval.py --scale    # latency at 10k runbooks + EXPLAIN plan

Runs on its own databases (aihelper_bench, aihelper_bench_scale), never the dev data. Reads the corpus
and queries from ../shared/data (skips with a reason when absent).
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import time
from collections import Counter

import numpy as np
from _setup import dev_queries, django_setup, load_corpus
from fit_confidence import ece

STRATEGIES = ("no_solutions", "single_solution", "primary_plus_one", "multiple_options", "experimental_options")

SCALE_TARGET = 10_000


class BM25:
    """Okapi BM25 (k1 1.2, b 0.75) over the embedded document text: the plain keyword baseline."""

    def __init__(self, docs: dict[str, str]):
        self.tokens = {slug: re.findall(r"[a-z0-9]+", text.lower()) for slug, text in docs.items()}
        self.avg = statistics.fmean(len(t) for t in self.tokens.values())
        df = Counter(word for tokens in self.tokens.values() for word in set(tokens))
        n = len(docs)
        self.idf = {word: math.log(1 + (n - f + 0.5) / (f + 0.5)) for word, f in df.items()}
        self.tf = {slug: Counter(tokens) for slug, tokens in self.tokens.items()}

    def rank(self, query: str) -> list[tuple[str, float]]:
        words = re.findall(r"[a-z0-9]+", query.lower())
        scores = {}
        for slug, tf in self.tf.items():
            length = len(self.tokens[slug])
            scores[slug] = sum(
                self.idf.get(w, 0) * tf[w] * 2.2 / (tf[w] + 1.2 * (0.25 + 0.75 * length / self.avg)) for w in words
            )
        return sorted(scores.items(), key=lambda item: -item[1])


def percentile(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(name, ranked, queries, latency=None):
    """ranked: per query a list of (slug, confidence or None, recommended or None) in rank order."""
    positives = [(q, r) for q, r in zip(queries, ranked, strict=True) if q["gold_slug"]]
    negatives = [r for q, r in zip(queries, ranked, strict=True) if not q["gold_slug"]]
    ranks = []
    for query, results in positives:
        slugs = [slug for slug, _, _ in results]
        ranks.append(slugs.index(query["gold_slug"]) + 1 if query["gold_slug"] in slugs else math.inf)
    row = {
        "method": name,
        "R@1": sum(r <= 1 for r in ranks) / len(ranks),
        "R@3": sum(r <= 3 for r in ranks) / len(ranks),
        "R@5": sum(r <= 5 for r in ranks) / len(ranks),
        "MRR": statistics.fmean(1 / r for r in ranks),
    }
    if ranked[0] and ranked[0][0][1] is not None:
        row["gold rec."] = statistics.fmean(
            any(slug == q["gold_slug"] and rec for slug, _, rec in results) for q, results in positives
        )
        row["neg. quiet"] = statistics.fmean(not any(rec for _, _, rec in results) for results in negatives)
        row["ECE"] = ece(
            [
                (conf, int(slug == q["gold_slug"]))
                for q, results in zip(queries, ranked, strict=True)
                for slug, conf, _ in results[:5]
            ]
        )
    if latency:
        row.update(latency)
    return row


def print_table(rows) -> str:
    columns = [
        "method",
        "R@1",
        "R@3",
        "R@5",
        "MRR",
        "gold rec.",
        "neg. quiet",
        "ECE",
        "p50 ms",
        "p95 ms",
        "p50 ms (no embed)",
        "p95 ms (no embed)",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "–")
            cells.append(
                f"{value:.3f}"
                if isinstance(value, float) and column not in columns[8:]
                else f"{value:.1f}"
                if isinstance(value, float)
                else str(value)
            )
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    return table


def timed_search(query, reader, config):
    # As the chat and the search page get it: with the learned-feedback read, which runbook_search did
    # itself before the architecture refactor (the same work as the figures in docs/benchmarks.md).
    from aihelper.chat.retrieval import runbooks_find

    started = time.perf_counter()
    outcome = runbooks_find(query=query, user=reader, limit=10, config=config)
    return outcome, (time.perf_counter() - started) * 1000


def reliability(pairs, bins=10) -> str:
    """10 equal-width confidence bins over (confidence, right) pairs: count, mean confidence, share right."""
    lines = ["| confidence | count | mean confidence | share right | gap |", "|---|---|---|---|---|"]
    for b in range(bins):
        chunk = [(c, y) for c, y in pairs if min(int(c * bins), bins - 1) == b]
        if chunk:
            mean, right = statistics.fmean(c for c, _ in chunk), statistics.fmean(y for _, y in chunk)
            lines.append(
                f"| {b / bins:.1f}–{(b + 1) / bins:.1f} | {len(chunk)} | {mean:.3f} | {right:.3f} "
                f"| {right - mean:+.3f} |"
            )
        else:
            lines.append(f"| {b / bins:.1f}–{(b + 1) / bins:.1f} | 0 | – | – | – |")
    return "\n".join(lines)


def top3_pairs(rows) -> list[tuple[float, int]]:
    """rows: (query, [(slug, confidence, recommended)]) -> (confidence, right) of the top 3 of every query."""
    return [(conf, int(slug in q["gold"])) for q, results in rows for slug, conf, _ in results[:3]]


def set_table(groups: dict[str, list]) -> str:
    from fit_confidence import metrics

    lines = ["| set | queries | R@1 | MRR | gold rec. | neg. quiet | ECE (top 3) |", "|---|---|---|---|---|---|---|"]
    for name, rows in groups.items():
        if rows:
            m = metrics(rows)
            lines.append(
                f"| {name} | {m['n']} | "
                + " | ".join(
                    "–" if math.isnan(m[k]) else f"{m[k]:.3f}" for k in ("R@1", "MRR", "gold rec.", "neg. quiet", "ECE")
                )
                + " |"
            )
    return "\n".join(lines)


def run_sets(reader, config) -> None:
    """Our search over every labelled set, through the product path; CV of the fit; reliability; strategies."""
    from _setup import labelled_queries, use_collection
    from fit_confidence import FIT_L2, collect, cross_validate

    queries = labelled_queries()
    product, strategies = {}, {}
    for collection in ("public", "demo"):
        use_collection(collection)
        for query in (q for q in queries if q["collection"] == collection):
            outcome, _ = timed_search(query["query"], reader, config)
            product[query["id"]] = [(r.runbook.slug, r.confidence, r.recommended) for r in outcome.results]
            strategies[query["id"]] = outcome.strategy
    use_collection("public")

    def rows(predicate):
        return [(q, product[q["id"]]) for q in queries if predicate(q)]

    groups = {
        "dev split (../shared; fitted on)": rows(lambda q: q["split"] == "dev"),
        "ours, fit part (in-sample)": rows(lambda q: q["split"] == "fit"),
    }
    for collection in ("public", "demo"):
        for kind in ("alert", "question", "none"):
            groups[f"holdout: {collection} {kind}"] = rows(
                lambda q, c=collection, k=kind: q["split"] == "holdout" and q["collection"] == c and q["kind"] == k
            )
    groups["**holdout: all**"] = rows(lambda q: q["split"] == "holdout")
    groups["holdout: public (alerts + none)"] = rows(lambda q: q["split"] == "holdout" and q["collection"] == "public")
    groups["holdout: demo (questions + none)"] = rows(lambda q: q["split"] == "holdout" and q["collection"] == "demo")
    train = [d for d in collect(queries) if d.query["split"] in ("fit", "dev")]
    cv = cross_validate(train, FIT_L2)
    groups[f"CV over the fit data (5 folds x 3 shuffles, L2 {FIT_L2})"] = cv
    print("\n### Our search, per set\n")
    print(set_table(groups))
    holdout = groups["**holdout: all**"]
    print("\n### Reliability, holdout (top 3 of every query; product path)\n")
    print(reliability(top3_pairs(holdout)))
    print(f"ECE {ece(top3_pairs(holdout)):.3f}")
    print("\n### Reliability, cross-validated (top 3 of every query, out of fold)\n")
    print(reliability(top3_pairs(cv)))
    print(f"ECE {ece(top3_pairs(cv)):.3f}")
    print("\n### Strategy mix\n")
    print("| set | " + " | ".join(STRATEGIES) + " |\n|---|" + "---|" * len(STRATEGIES))
    for name, predicate in (
        ("engineer questions (all)", lambda q: q["kind"] == "question"),
        ("engineer questions (holdout)", lambda q: q["kind"] == "question" and q["split"] == "holdout"),
        ("alerts (all, incl. dev)", lambda q: q["kind"] == "alert"),
        ("no runbook (all)", lambda q: q["kind"] == "none"),
    ):
        counts = Counter(strategies[q["id"]] for q in queries if predicate(q))
        print(f"| {name} | " + " | ".join(str(counts.get(s, 0)) for s in STRATEGIES) + " |")


def run_quality() -> None:
    django_setup("aihelper_bench")
    load_corpus(demo=True)
    from pgvector.django import CosineDistance

    from runbooks.embeddings import get_embedder, runbook_document
    from runbooks.models import Runbook
    from runbooks.search import SearchConfig
    from runbooks.selectors import operator_reader

    queries = dev_queries()
    reader = operator_reader()
    config = SearchConfig.from_settings()
    runbooks = list(Runbook.objects.filter(enabled=True))
    bm25 = BM25({r.slug: runbook_document(r) for r in runbooks})
    embedder = get_embedder()
    embedder.embed_query("warm up")  # the model load is a process start-up cost, not search latency

    bm25_ranked, vector_ranked, ours_ranked = [], [], []
    cold, warm, vector_ms = [], [], []
    for query in queries:
        bm25_ranked.append([(slug, None, None) for slug, _ in bm25.rank(query["query"])[:10]])
        started = time.perf_counter()
        vector = embedder.embed_query(query["query"])
        rows = (
            Runbook.objects.filter(enabled=True)
            .annotate(d=CosineDistance("embedding", vector))
            .order_by("d")
            .values_list("slug", "d")[:10]
        )
        # README reference rule for a plain vector search: 0.5 * similarity + 0.3 (no success data).
        vector_ranked.append(
            [(slug, 0.5 * (1 - d) + 0.3, 0.5 * (1 - d) + 0.3 >= config.threshold) for slug, d in rows][:10]
        )
        for index, item in enumerate(vector_ranked[-1]):
            if index >= 3:
                vector_ranked[-1][index] = (item[0], item[1], False)
        vector_ms.append((time.perf_counter() - started) * 1000)
        if hasattr(embedder, "_cache"):  # measure the first search of a query with its embedding
            embedder._cache.clear()
        outcome, ms = timed_search(query["query"], reader, config)
        cold.append(ms)
        _, ms = timed_search(query["query"], reader, config)  # the query vector now comes from the LRU cache
        warm.append(ms)
        ours_ranked.append([(r.runbook.slug, r.confidence, r.recommended) for r in outcome.results])

    def lat(with_embed, without=None):
        out = {"p50 ms": percentile(with_embed, 50), "p95 ms": percentile(with_embed, 95)}
        if without:
            out |= {"p50 ms (no embed)": percentile(without, 50), "p95 ms (no embed)": percentile(without, 95)}
        return out

    rows = [
        summarise("BM25 only (k1 1.2, b 0.75)", bm25_ranked, queries),
        summarise("vector only (MiniLM, HNSW)", vector_ranked, queries, lat(vector_ms)),
        summarise("ours (hybrid + calibrated)", ours_ranked, queries, lat(cold, warm)),
    ]
    print(
        f"\n{len(queries)} dev queries ({sum(bool(q['gold_slug']) for q in queries)} positive), "
        f"{len(runbooks)} runbooks, threshold {config.threshold}\n"
    )
    print_table(rows)
    run_sets(reader, config)


def run_scale() -> None:
    django_setup("aihelper_bench_scale")
    load_corpus()
    from django.db import connection, transaction

    from runbooks.models import Runbook
    from runbooks.search import SearchConfig
    from runbooks.selectors import operator_reader, visible_runbooks

    originals = list(Runbook.objects.exclude(slug__startswith="scale/"))
    missing = SCALE_TARGET - Runbook.objects.count()
    if missing > 0:
        rng = np.random.default_rng(7)
        words = "alpha beta gamma delta cluster node service queue cache shard replica gateway".split()
        batch = []
        for i in range(missing):
            source = originals[i % len(originals)]
            noise = rng.normal(0, 0.04, len(source.embedding))
            vector = np.asarray(source.embedding) + noise
            suffix = " ".join(rng.choice(words, 3))
            batch.append(
                Runbook(
                    slug=f"scale/{i:05d}-{source.slug.replace('/', '-')}",
                    name=f"{source.name}{suffix.title().replace(' ', '')}",
                    description=f"{source.description} ({suffix})",
                    tags=source.tags,
                    steps=source.steps,
                    embedding=(vector / np.linalg.norm(vector)).tolist(),
                    embedding_model=source.embedding_model,
                    embedding_hash="scale-variant",
                )
            )
        with transaction.atomic():
            Runbook.objects.bulk_create(batch, batch_size=1000)  # the triggers fill search_vector, search_title
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE runbooks")
    total = Runbook.objects.count()
    reader = operator_reader()
    config = SearchConfig.from_settings()
    queries = dev_queries()
    for query in queries:
        timed_search(query["query"], reader, config)  # warm: model, LRU cache, buffers
    runs = [timed_search(q["query"], reader, config) for q in queries for _ in range(2)]
    timings = [elapsed for _, elapsed in runs]
    print(
        f"\n{total} runbooks: search without query embedding p50 {percentile(timings, 50):.1f} ms, "
        f"p95 {percentile(timings, 95):.1f} ms over {len(timings)} searches\n"
    )
    print("| step | p50 ms | p95 ms |\n|---|---|---|")
    for step in ("candidates_ms", "features_ms", "score_ms"):
        values = [outcome.timings_ms.get(step, 0.0) for outcome, _ in runs]
        print(f"| {step.removesuffix('_ms')} | {percentile(values, 50):.1f} | {percentile(values, 95):.1f} |")
    print()
    from pgvector.django import CosineDistance

    from runbooks.embeddings import get_embedder

    vector = get_embedder().embed_query(queries[0]["query"])
    plan = (
        visible_runbooks(reader)
        .filter(embedding__isnull=False)
        .annotate(distance=CosineDistance("embedding", vector))
        .order_by("distance")
        .values_list("pk", "distance")[: config.candidates]
        .explain()
    )
    # The plan repeats the 384 numbers of the query vector: shorten them for reading.
    plan = re.sub(r"'\[[-0-9.e,]{80,}\]'", "'[<384 numbers>]'", plan)
    print("EXPLAIN (vector leg):\n" + plan)
    print("HNSW index used:", "runbooks_embedding_hnsw" in plan)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", action="store_true", help=f"latency at {SCALE_TARGET} runbooks and EXPLAIN")
    args = parser.parse_args()
    run_scale() if args.scale else run_quality()
