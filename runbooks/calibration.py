"""Ranking score, calibrated confidence and presentation strategy: pure functions of the features.

Fitted by benchmarks/fit_confidence.py, which prints the constants to paste here; docs/retrieval.md
explains the fit and the figures.
"""

from __future__ import annotations

import math
from typing import Protocol

STRATEGIES = ("no_solutions", "single_solution", "primary_plus_one", "multiple_options", "experimental_options")

# Ranking and confidence, fitted by benchmarks/fit_confidence.py (docs/retrieval.md has the figures). Each
# candidate gets its own probability of being a right runbook for the query (several can be right; the
# probabilities do not share a total):
#   score = sum(CALIBRATION[f] * f for f in FEATURES)      -- the ranking score
#   logit = intercept + score + coverage * coverage(best) + gap * (score - best score)
# Fitted on our own labelled queries (benchmarks/data: fit part) and the dev split of ../shared, by
# penalised maximum likelihood over every candidate of every query, L2 strength chosen by cross-validation.
FEATURES = ("semantic", "keyword", "title", "title_exact", "named", "bm25")
CALIBRATION = {
    "intercept": -5.824,
    "semantic": 4.216,
    "keyword": 0.785,
    "title": 0.825,
    "title_exact": 0.589,
    "named": 3.141,
    "bm25": 1.257,
    "coverage": 3.33,
    "gap": 2.516,
}
# Not fitted (the eval data has no executions): priors added on the logit scale, neutral without data.
SUCCESS_LOGIT_WEIGHT = 2.0  # smoothed success rate 1.0 -> +1.0, 0.0 -> -1.0, no data (0.5) -> 0
AUTOMATION_LOGIT_BONUS = 0.2
# Learned click feedback (analytics.update_runbook_stats: position-debiased, in [-1, 1]) can move the
# logit by at most +-0.5: it nudges between close candidates, never overrides retrieval.
FEEDBACK_LOGIT_WEIGHT = 0.5


class RankFeatures(Protocol):
    """A candidate's features (runbooks.search.Candidate has them); docs/retrieval.md defines each."""

    @property
    def semantic(self) -> float: ...

    @property
    def keyword(self) -> float: ...

    @property
    def title(self) -> float: ...

    @property
    def title_exact(self) -> float: ...

    @property
    def named(self) -> float: ...

    @property
    def bm25(self) -> float: ...


def rank_score(features: RankFeatures) -> float:
    return sum(CALIBRATION[name] * getattr(features, name) for name in FEATURES)


def confidence_from(
    *,
    score: float,
    top_score: float,
    success: float,
    automated: bool,
    top_coverage: float = 0.0,
    feedback: float = 0.0,
) -> float:
    """Calibrated P(this runbook is a right one) from its score, its distance to the best one and how
    much of the query the best one explains (``top_coverage``), then the priors."""
    logit = (
        CALIBRATION["intercept"]
        + score
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
