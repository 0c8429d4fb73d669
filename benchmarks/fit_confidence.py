"""Fit the ranking weights and the confidence calibration in runbooks/selectors.py.

Run: .venv/bin/python benchmarks/fit_confidence.py   (uses its own database, aihelper_bench)

1. Ranking: score = semantic + w_kw * keyword + w_title * title coverage; (w_kw, w_title) picked on a
   small grid by mean reciprocal rank.
2. Calibration: logistic regression of "is the gold runbook" on [score, score - best score] over all
   candidates, positives weighted POSITIVE_WEIGHT (see docs/retrieval.md for why).
Both steps are evaluated by 5-fold cross-validation over queries (weights chosen inside each fold),
then refitted on the whole dev split; paste the printed constants into runbooks/selectors.py.
"""

from __future__ import annotations

import numpy as np
from _setup import dev_queries, django_setup, load_corpus

GRID_KW = (0.0, 0.1, 0.2, 0.3, 0.5)
GRID_TITLE = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2)
POSITIVE_WEIGHT = 3.0
C = 10.0


def collect():
    from runbooks.selectors import SearchConfig, operator_reader, runbook_candidates, visible_runbooks

    config = SearchConfig.from_settings()
    base = visible_runbooks(operator_reader())
    data, names = [], []
    for query in dev_queries():
        runbooks, candidates = runbook_candidates(text=query["query"], base=base, config=config, timings={})
        features = np.array([[c.semantic, c.keyword, c.title] for c in candidates])
        labels = np.array([int(runbooks[c.pk].slug == query["gold_slug"]) for c in candidates])
        data.append((features, labels, query["gold_slug"] is not None))
        names.append((query["id"], query["gold_slug"], [runbooks[c.pk].slug for c in candidates]))
    return data, names


def scores(features, weights):
    return features[:, 0] + weights[0] * features[:, 1] + weights[1] * features[:, 2]


def mrr(data, weights):
    total = count = 0
    for features, labels, positive in data:
        if not positive:
            continue
        count += 1
        order = np.argsort(-scores(features, weights))
        hits = np.flatnonzero(labels[order])
        total += 1 / (hits[0] + 1) if len(hits) else 0
    return total / count


def calibration_features(features, weights):
    score = scores(features, weights)
    return np.c_[score, score - score.max()]


def fit(data):
    from sklearn.linear_model import LogisticRegression

    weights = max(((k, t) for k in GRID_KW for t in GRID_TITLE), key=lambda w: mrr(data, w))
    x = np.vstack([calibration_features(f, weights) for f, _, _ in data])
    y = np.concatenate([labels for _, labels, _ in data])
    model = LogisticRegression(C=C, max_iter=1000).fit(x, y, sample_weight=np.where(y == 1, POSITIVE_WEIGHT, 1.0))
    return weights, model


def evaluate(data, folds=5, seed=0):
    from sklearn.model_selection import KFold

    hits1 = rr = recommended = quiet = positives = negatives = 0
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(np.arange(len(data))):
        weights, model = fit([data[i] for i in train])
        for i in test:
            features, labels, positive = data[i]
            probability = model.predict_proba(calibration_features(features, weights))[:, 1]
            order = np.argsort(-scores(features, weights))
            top3 = probability[order][:3]
            if positive:
                positives += 1
                rank = int(np.flatnonzero(labels[order])[0]) + 1 if labels.any() else 999
                hits1 += rank == 1
                rr += 1 / rank
                recommended += rank <= 3 and probability[order][rank - 1] >= 0.5
            else:
                negatives += 1
                quiet += not (top3 >= 0.5).any()
    print(
        f"cross-validated ({folds} folds): recall@1 {hits1 / positives:.3f}  MRR {rr / positives:.3f}  "
        f"gold recommended {recommended / positives:.3f}  negatives quiet {quiet / negatives:.3f}"
    )


def print_misses(data, names, weights, model) -> None:
    """In-sample failures of the final fit: a positive whose gold is not recommended, a negative that is."""
    for (features, labels, positive), (query_id, gold, slugs) in zip(data, names, strict=True):
        probability = model.predict_proba(calibration_features(features, weights))[:, 1]
        order = np.argsort(-scores(features, weights))[:3]
        recommended = [i for i in order if probability[i] >= 0.5]
        if positive == any(labels[i] for i in recommended) and (positive or not recommended):
            continue
        top = ", ".join(
            f"{slugs[i]} p={probability[i]:.2f} [sem {features[i, 0]:.2f} kw {features[i, 1]:.2f} "
            f"title {features[i, 2]:.2f}]"
            for i in order
        )
        print(f"miss {query_id} (gold {gold}): {top}")


def main() -> None:
    django_setup("aihelper_bench")
    load_corpus()
    data, names = collect()
    evaluate(data)
    weights, model = fit(data)
    print_misses(data, names, weights, model)
    print(f'RANK_WEIGHTS = {{"semantic": 1.0, "keyword": {weights[0]}, "title": {weights[1]}}}')
    intercept, (score, gap) = float(model.intercept_[0]), model.coef_[0]
    print(f'CALIBRATION = {{"intercept": {intercept:.3f}, "score": {score:.3f}, "gap": {gap:.3f}}}')


if __name__ == "__main__":
    main()
