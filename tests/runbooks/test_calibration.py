"""Confidence priors and the presentation strategy: pure functions, no database."""

import pytest

from runbooks.calibration import STRATEGIES, confidence_from, presentation_strategy
from runbooks.search import SearchConfig


def test_success_rate_is_neutral_without_data_and_moves_confidence():
    neutral = confidence_from(score=1.2, top_score=1.2, success=0.5, automated=False)
    assert confidence_from(score=1.2, top_score=1.2, success=0.9, automated=False) > neutral
    assert confidence_from(score=1.2, top_score=1.2, success=0.1, automated=False) < neutral
    assert confidence_from(score=1.2, top_score=1.2, success=0.5, automated=True) > neutral


# --- presentation strategy: every rule at its boundary ------------------------------------------

CONFIG = SearchConfig(threshold=0.5, experimental_margin=0.1, primary_gap=0.15)


@pytest.mark.parametrize(
    ("confidences", "expected"),
    [
        ([], "no_solutions"),
        ([0.5], "experimental_options"),
        ([0.5999], "experimental_options"),
        ([0.6], "single_solution"),
        ([0.95], "single_solution"),
        ([0.59, 0.55], "experimental_options"),
        ([0.8, 0.65], "primary_plus_one"),
        ([0.8, 0.6501], "multiple_options"),
        ([0.9, 0.75, 0.7], "primary_plus_one"),
        ([0.9, 0.8, 0.7], "multiple_options"),
        ([0.6, 0.6, 0.6], "multiple_options"),
    ],
)
def test_presentation_strategy_boundaries(confidences, expected):
    assert presentation_strategy(confidences, CONFIG) == expected


def test_every_strategy_is_reachable():
    cases = [[], [0.55], [0.9], [0.9, 0.6], [0.9, 0.85]]
    assert {presentation_strategy(c, CONFIG) for c in cases} == set(STRATEGIES)
