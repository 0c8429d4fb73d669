"""Learning from clicks without position bias: a simulated ranking + feedback loop.

Engineers ask questions; retrieval proposes 5 candidate runbooks and shows the top 3. Each runbook has
a true relevance (the chance it solves the problem) and a retrieval bias unrelated to it (a catchy
title). Engineers examine rank k with probability 1, 1/2, 1/4 (position bias) and click an examined
runbook with probability equal to its relevance. Every BATCH rounds the feedback is recomputed from
all clicks so far (like the nightly update_runbook_stats) and added to the ranking score.

Compared, on the same seeds and queries:
  none   no feedback
  naive  raw click-through, same shrinkage and scale (analytics.estimators.naive_feedback_scores)
  ours   the shipped code: PBM propensities by EM -> inverse-propensity weighted CTR -> bounded score
         (analytics.estimators.pbm_propensities / ipw_ctr / feedback_scores, as in update_runbook_stats)

    .venv/bin/python benchmarks/feedback_simulation.py [--rounds 6000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.estimators import feedback_scores, ipw_ctr, naive_feedback_scores, pbm_propensities  # noqa: E402

RUNBOOKS = 30
CANDIDATES = 5
SHOWN = 3
EXAMINATION = {1: 1.0, 2: 0.5, 3: 0.25}
FEEDBACK_WEIGHT = 0.6  # on the scale of the retrieval score (relevance contributes 0.5 * [0, 1])
BATCH = 250
WARM_UP = 1000


def ndcg_at_3(shown: list[int], candidates: list[int], relevance: dict) -> float:
    def dcg(items):
        return sum(relevance[r] / math.log2(i + 2) for i, r in enumerate(items[:SHOWN]))

    ideal = dcg(sorted(candidates, key=lambda r: -relevance[r]))
    return dcg(shown) / ideal if ideal else 0.0


def simulate(policy: str, seed: int, rounds: int) -> tuple[float, float]:
    world = random.Random(seed)
    relevance = {r: world.uniform(0.05, 0.95) for r in range(RUNBOOKS)}
    bias = {r: world.gauss(0, 0.35) for r in range(RUNBOOKS)}
    queries = random.Random(seed + 1)  # the same questions for every policy
    engineers = random.Random(seed + 2)
    counts: dict = defaultdict(lambda: [0, 0])
    feedback: dict = {}
    ndcgs, firsts = [], []
    for round_ in range(rounds):
        if round_ % BATCH == 0 and policy != "none" and counts:
            snapshot = {key: tuple(value) for key, value in counts.items()}
            if policy == "naive":
                feedback = naive_feedback_scores(snapshot)
            else:
                feedback = feedback_scores(ipw_ctr(snapshot, pbm_propensities(snapshot, iterations=50)))
        candidates = queries.sample(range(RUNBOOKS), CANDIDATES)
        base = {r: 0.5 * relevance[r] + bias[r] + queries.gauss(0, 0.15) for r in candidates}
        shown = sorted(candidates, key=lambda r: -(base[r] + FEEDBACK_WEIGHT * feedback.get(r, 0.0)))[:SHOWN]
        for rank, r in enumerate(shown, 1):
            clicked = engineers.random() < EXAMINATION[rank] and engineers.random() < relevance[r]
            counts[(r, rank)][0] += 1
            counts[(r, rank)][1] += int(clicked)
        if round_ >= WARM_UP:
            ndcgs.append(ndcg_at_3(shown, candidates, relevance))
            firsts.append(shown[0] == max(candidates, key=lambda r: relevance[r]))
    return statistics.fmean(ndcgs), statistics.fmean(firsts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for policy in ("none", "naive", "ours"):
        runs = [simulate(policy, seed, args.rounds) for seed in range(args.seeds)]
        results[policy] = (statistics.fmean(r[0] for r in runs), statistics.fmean(r[1] for r in runs))
    print(f"{args.seeds} seeds x {args.rounds} rounds ({WARM_UP} warm-up); examination by rank {EXAMINATION}")
    print("| policy | NDCG@3 | first-choice accuracy |")
    print("| --- | ---: | ---: |")
    for policy, (ndcg, first) in results.items():
        print(f"| {policy} | {ndcg:.4f} | {first:.4f} |")
    ours = results["ours"]
    beats = all(ours[0] > results[p][0] and ours[1] > results[p][1] for p in ("none", "naive"))
    print("ours beats both:", "yes" if beats else "NO")
    sys.exit(0 if beats else 1)


if __name__ == "__main__":
    main()
