"""Fit the ranking and the confidence in runbooks/calibration.py on our own labelled queries.

Run: .venv/bin/python benchmarks/fit_confidence.py   (uses its own database, aihelper_bench)

Data: the "fit" part of benchmarks/data/queries.jsonl (public corpus and demo runbooks; alert texts,
engineer questions, queries without a runbook) plus the dev split of ../shared/data/eval. The "holdout"
part is never fitted on: it is evaluated once, at the end, with the final constants.

Model (docs/retrieval.md): each candidate's own probability of being a right runbook,

    s      = w . features                   (semantic, keyword, title, title_exact, named)
    logit  = intercept + s + c * coverage(best) + g * (s - best s)

fitted by penalised maximum likelihood over every candidate of every query (label: the candidate is
one of the query's gold runbooks). L2 strength chosen by 5-fold cross-validation over queries.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass

import numpy as np
from _setup import django_setup, labelled_queries, load_corpus, use_collection

FEATURES = ("semantic", "keyword", "title", "title_exact", "named", "bm25")
PARAMS = ("intercept", *FEATURES, "coverage", "gap")
L2_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
# The L2 strength in use (runbooks/calibration.py was fitted with it); main() prints the grid's CV figures.
FIT_L2 = 0.1
THRESHOLD = 0.4  # AIHELPER_CONFIDENCE_THRESHOLD's default (main() checks)
MAX_RECOMMENDED = 3


@dataclass
class QueryData:
    query: dict
    slugs: list[str]
    x: np.ndarray  # candidates x FEATURES
    coverage: np.ndarray  # per candidate query coverage (the best one's is used)
    y: np.ndarray  # 1 = a gold runbook

    @property
    def positive(self) -> bool:
        return bool(self.query["gold"])


def collect(queries) -> list[QueryData]:
    from runbooks.calibration import FEATURES as PRODUCT_FEATURES
    from runbooks.search import SearchConfig, runbook_candidates
    from runbooks.selectors import operator_reader, visible_runbooks

    assert PRODUCT_FEATURES == FEATURES, "fit the features the product computes"
    config = SearchConfig.from_settings()
    reader = operator_reader()
    data = []
    for collection in ("public", "demo"):
        use_collection(collection)
        base = visible_runbooks(reader)
        for query in (q for q in queries if q["collection"] == collection):
            found = runbook_candidates(text=query["query"], base=base, config=config)
            candidates = found.candidates
            slugs = [found.runbooks[c.pk].slug for c in candidates]
            x = np.array([[getattr(c, name) for name in FEATURES] for c in candidates]).reshape(-1, len(FEATURES))
            coverage = np.array([c.coverage for c in candidates])
            y = np.array([int(slug in query["gold"]) for slug in slugs])
            data.append(QueryData(query, slugs, x, coverage, y))
    use_collection("public")
    return data


@dataclass
class Packed:
    """Every candidate of many queries in flat arrays (for a vectorised likelihood)."""

    x: np.ndarray
    coverage: np.ndarray
    y: np.ndarray
    starts: np.ndarray  # first row of each (non-empty) query
    lengths: np.ndarray


def pack(items: list[QueryData]) -> Packed:
    items = [item for item in items if len(item.slugs)]
    lengths = np.array([len(item.slugs) for item in items])
    return Packed(
        x=np.vstack([item.x for item in items]),
        coverage=np.concatenate([item.coverage for item in items]),
        y=np.concatenate([item.y for item in items]),
        starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int),
        lengths=lengths,
    )


def packed_logits(theta: np.ndarray, data: Packed) -> np.ndarray:
    """The formula of runbooks/calibration.py for every candidate at once."""
    s = data.x @ theta[1 : 1 + len(FEATURES)]
    best = np.repeat(np.maximum.reduceat(s, data.starts), data.lengths)
    rows = np.arange(len(s))
    first_best = np.minimum.reduceat(np.where(s >= best, rows, len(s)), data.starts)
    top_coverage = np.repeat(data.coverage[first_best], data.lengths)
    return theta[0] + s + theta[-2] * top_coverage + theta[-1] * (s - best)


def probabilities(theta, item: QueryData) -> np.ndarray:
    if not len(item.slugs):
        return np.zeros(0)
    return 1 / (1 + np.exp(-np.clip(packed_logits(theta, pack([item])), -30, 30)))


def fit(data: list[QueryData], l2: float) -> np.ndarray:
    """Penalised maximum likelihood (L2 on every coefficient but the intercept); gap kept >= 0."""
    from scipy.optimize import minimize

    packed = pack(data)

    def loss(theta):
        z = packed_logits(theta, packed)
        return float(np.sum(np.logaddexp(0, z) - packed.y * z)) + l2 * float(np.sum(theta[1:] ** 2))

    start = np.zeros(len(PARAMS))
    start[0], start[1] = -5.0, 5.0
    bounds = [(None, None)] * (len(PARAMS) - 1) + [(0, 100)]
    return minimize(loss, start, method="L-BFGS-B", bounds=bounds).x


def ranked(theta, item):
    """[(slug, confidence, recommended)] in rank order, as the search presents them."""
    probability = probabilities(theta, item)
    order = sorted(range(len(item.slugs)), key=lambda i: (-probability[i], item.slugs[i]))
    return [
        (item.slugs[i], float(probability[i]), rank < MAX_RECOMMENDED and probability[i] >= THRESHOLD)
        for rank, i in enumerate(order)
    ]


def metrics(results: list[tuple[dict, list]]) -> dict:
    """R@1, MRR, gold recommended, negatives quiet, ECE over the top 3 of every query."""
    positives = [(q, r) for q, r in results if q["gold"]]
    negatives = [r for q, r in results if not q["gold"]]
    ranks = []
    for query, rows in positives:
        hits = [rank for rank, (slug, _, _) in enumerate(rows, start=1) if slug in query["gold"]]
        ranks.append(hits[0] if hits else math.inf)
    pairs = [(conf, int(slug in q["gold"])) for q, rows in results for slug, conf, _ in rows[:3]]
    return {
        "n": len(results),
        "R@1": np.mean([r == 1 for r in ranks]) if ranks else float("nan"),
        "MRR": np.mean([1 / r for r in ranks]) if ranks else float("nan"),
        "gold rec.": np.mean([any(s in q["gold"] and rec for s, _, rec in rows) for q, rows in positives])
        if positives
        else float("nan"),
        "neg. quiet": np.mean([not any(rec for _, _, rec in rows) for rows in negatives])
        if negatives
        else float("nan"),
        "ECE": ece(pairs),
    }


def ece(pairs, bins=10) -> float:
    if not pairs:
        return float("nan")
    total = 0.0
    for b in range(bins):
        chunk = [(c, y) for c, y in pairs if min(int(c * bins), bins - 1) == b]
        if chunk:
            total += abs(np.mean([c for c, _ in chunk]) - np.mean([y for _, y in chunk])) * len(chunk)
    return total / len(pairs)


def cross_validate(data, l2, folds=5, seeds=(0, 1, 2)) -> list[tuple[dict, list]]:
    """Out-of-fold rankings of every query (one list per seed, concatenated)."""
    from sklearn.model_selection import KFold

    out = []
    for seed in seeds:
        for train, test in KFold(folds, shuffle=True, random_state=seed).split(np.arange(len(data))):
            theta = fit([data[i] for i in train], l2)
            out += [(data[i].query, ranked(theta, data[i])) for i in test]
    return out


def format_row(name, row) -> str:
    cells = [f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in row]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", help="write the collected features to this JSON file (for inspection)")
    args = parser.parse_args()
    django_setup("aihelper_bench")
    load_corpus(demo=True)
    queries = labelled_queries()
    data = collect(queries)
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as handle:
            json.dump(
                [
                    {"query": d.query, "slugs": d.slugs, "x": d.x.tolist(), "coverage": d.coverage.tolist()}
                    for d in data
                ],
                handle,
            )
    train = [d for d in data if d.query["split"] in ("fit", "dev")]
    holdout = [d for d in data if d.query["split"] == "holdout"]
    print(f"{len(train)} queries to fit on, {len(holdout)} held out (never fitted on)\n")
    header = "| set | n | R@1 | MRR | gold rec. | neg. quiet | ECE (top 3) |\n|---|---|---|---|---|---|---|"
    print(header)
    from runbooks.search import SearchConfig

    assert SearchConfig.from_settings().threshold == THRESHOLD, "evaluate at the product's threshold"
    keys = {}
    for l2 in L2_GRID:
        row = metrics(cross_validate(train, l2))
        print(format_row(f"CV, L2 {l2}", row))
        keys[l2] = row["gold rec."] + row["neg. quiet"] + row["R@1"] - row["ECE"]
    # The strongest penalty within 0.01 of the best: the fewer effective parameters, the better it travels.
    l2 = max(value for value, key in keys.items() if key >= max(keys.values()) - 0.01)
    if l2 != FIT_L2:
        print(f"\nNOTE: the grid's best L2 is {l2}, FIT_L2 is {FIT_L2}: update FIT_L2 with the constants.")
    theta = fit(train, l2)
    print(format_row(f"in-sample, L2 {l2}", metrics([(d.query, ranked(theta, d)) for d in train])))
    if holdout:
        print(format_row("holdout", metrics([(d.query, ranked(theta, d)) for d in holdout])))
    print(
        "\nCALIBRATION = {"
        + ", ".join(f'"{name}": {value:.3f}' for name, value in zip(PARAMS, theta, strict=True))
        + "}"
    )


if __name__ == "__main__":
    main()
