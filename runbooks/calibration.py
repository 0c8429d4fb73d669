"""Ranking score, calibrated confidence and presentation strategy: pure functions of the features.

Fitted by benchmarks/fit_confidence.py, which prints the constants to paste here; docs/retrieval.md
explains the fit and the figures.
"""

from __future__ import annotations

import math
from typing import Protocol

STRATEGIES = ("no_solutions", "single_solution", "primary_plus_one", "multiple_options", "experimental_options")

# Ranking and confidence. Fitted by benchmarks/fit_confidence.py on data/eval/alert_queries_dev.jsonl
# (5-fold cross-validation for the choice, final fit on the whole dev split); see docs/retrieval.md.
# Two stages: (intercept, score, coverage) is a logistic regression of "the best candidate is the
# right runbook", one row per query; gap (score minus the best score, <= 0) is then fitted over all
# candidates with the first stage as offset. Same formula for every candidate; the best has gap 0.
# Coverage is the *best* candidate's query coverage, the same for every candidate of a query (how
# answerable the query is), so it never reorders candidates (the priors below can, between close ones).
# Refitted 2026-11-26 (query coverage added): cross-validated gold recommended 0.897 -> 0.982 (mean of
# 5 shuffles of 5 folds), negatives quiet 1.000 -> 1.000.
RANK_WEIGHTS = {"semantic": 1.0, "keyword": 0.2, "title": 0.4}
CALIBRATION = {"intercept": -7.207, "score": 6.882, "coverage": 4.725, "gap": 36.308}
# Not fitted (the eval data has no executions): priors added on the logit scale, neutral without data.
SUCCESS_LOGIT_WEIGHT = 2.0  # smoothed success rate 1.0 -> +1.0, 0.0 -> -1.0, no data (0.5) -> 0
AUTOMATION_LOGIT_BONUS = 0.2
# Learned click feedback (analytics.update_runbook_stats: position-debiased, in [-1, 1]) can move the
# logit by at most +-0.5: it nudges between close candidates, never overrides retrieval.
FEEDBACK_LOGIT_WEIGHT = 0.5


def rank_score(*, semantic: float, keyword: float, title: float) -> float:
    return RANK_WEIGHTS["semantic"] * semantic + RANK_WEIGHTS["keyword"] * keyword + RANK_WEIGHTS["title"] * title


def confidence_from(
    *,
    score: float,
    top_score: float,
    success: float,
    automated: bool,
    top_coverage: float = 0.0,
    feedback: float = 0.0,
) -> float:
    """Calibrated P(right runbook) from the fused score, its distance to the best one and how much
    of the query the best one explains (``top_coverage``), then the priors."""
    logit = (
        CALIBRATION["intercept"]
        + CALIBRATION["score"] * score
        + CALIBRATION["coverage"] * top_coverage
        + CALIBRATION["gap"] * (score - top_score)
        + SUCCESS_LOGIT_WEIGHT * (success - 0.5)
        + (AUTOMATION_LOGIT_BONUS if automated else 0.0)
        + FEEDBACK_LOGIT_WEIGHT * max(-1.0, min(1.0, feedback))
    )
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))


class StrategyRules(Protocol):
    """The thresholds the strategy reads (runbooks.search.SearchConfig has them)."""

    @property
    def threshold(self) -> float: ...

    @property
    def experimental_margin(self) -> float: ...

    @property
    def primary_gap(self) -> float: ...


def presentation_strategy(confidences: list[float], config: StrategyRules) -> str:
    """Pure function of the recommended confidences (highest first). Rules: docs/retrieval.md."""
    if not confidences:
        return "no_solutions"
    if confidences[0] < config.threshold + config.experimental_margin:
        return "experimental_options"
    if len(confidences) == 1:
        return "single_solution"
    if confidences[0] - confidences[1] >= config.primary_gap:
        return "primary_plus_one"
    return "multiple_options"
