from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from analytics import estimators
from analytics.models import Experiment
from analytics.services.experiments import experiment_analysis, experiment_assignment_for, experiment_variant_for
from analytics.sql.metrics import VariantCounts
from runbooks.search import SearchConfig
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TWO = [
    {"key": "control", "weight": 1, "overrides": {}},
    {"key": "low-threshold", "weight": 1, "overrides": {"threshold": 0.4, "max_recommended": 2}},
]


def experiment(**kwargs):
    values = {"key": "thresholds", "variants": TWO, "starts_at": timezone.now() - dt.timedelta(days=1)} | kwargs
    exp = Experiment(**values)
    exp.full_clean()
    exp.save()
    return exp


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([], "cannot be blank"),
        ([{"key": "a", "weight": 1}], "at least two variants"),
        ([{"key": "a", "weight": 1}, {"key": "a", "weight": 1}], "key 'a' is used twice"),
        ([{"key": "a", "weight": 0}, {"key": "b", "weight": 1}], "'weight' must be a positive number"),
        ([{"key": "a", "weight": "1"}, {"key": "b", "weight": 1}], "'weight' must be a positive number"),
        (
            [{"key": "a", "weight": 1, "overrides": {"candidates": 5}}, {"key": "b", "weight": 1}],
            "cannot be overridden",
        ),
        (
            [{"key": "a", "weight": 1, "overrides": {"threshold": 1.5}}, {"key": "b", "weight": 1}],
            "between 0.0 and 1.0",
        ),
        ([{"key": "a", "weight": 1, "overrides": {"max_recommended": 2.5}}, {"key": "b", "weight": 1}], "int between"),
        ([{"key": "A B", "weight": 1}, {"key": "b", "weight": 1}], "'key' must be lower-case"),
        ([{"key": "a", "weight": 1, "colour": "red"}, {"key": "b", "weight": 1}], "unknown keys: colour"),
    ],
)
def test_variants_are_validated_with_clear_errors(variants, message):
    with pytest.raises(ValidationError) as error:
        Experiment(key="x", variants=variants).full_clean()
    assert message in str(error.value)


def test_windows_must_not_overlap_and_must_end_after_they_start():
    experiment()
    with pytest.raises(ValidationError, match="overlaps experiment 'thresholds'"):
        Experiment(key="other", variants=TWO, starts_at=timezone.now()).full_clean()
    start = timezone.now() + dt.timedelta(days=30)
    with pytest.raises(ValidationError, match="end must be after the start"):
        Experiment(key="later", variants=TWO, starts_at=start, ends_at=start - dt.timedelta(days=1)).full_clean()


def test_admin_shows_validation_errors(client, staff_user):
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:analytics_experiment_add"),
        {
            "key": "bad",
            "variants": '[{"key": "a", "weight": -1}, {"key": "b", "weight": 1}]',
            "starts_at_0": "2026-01-01",
            "starts_at_1": "00:00:00",
        },
    )
    assert response.status_code == 200
    assert "must be a positive number" in response.content.decode()
    assert not Experiment.objects.exists()


def test_assignment_is_stable_and_applies_to_search_config():
    experiment()
    by_variant = {}
    while len(by_variant) < 2:  # a user in each variant (assignment is by a hash of the user id)
        user = UserFactory()
        by_variant.setdefault(experiment_assignment_for(user=user).variant, user)
    default = SearchConfig.from_settings()
    for variant, user in by_variant.items():
        first = experiment_assignment_for(user=user)
        assert first.experiment == "thresholds" and first.variant == variant
        assert all(experiment_assignment_for(user=user) == first for _ in range(5))
        config = SearchConfig.from_settings(**first.overrides)
        if variant == "low-threshold":
            assert (config.threshold, config.max_recommended) == (0.4, 2)
        else:
            assert (config.threshold, config.max_recommended) == (default.threshold, default.max_recommended)
    assert default.threshold != 0.4 or default.max_recommended != 2, "the variants must differ for this test"


def test_assignment_is_balanced_by_weight():
    even = Counter(experiment_variant_for(experiment_key="e", variants=TWO, user_id=i)["key"] for i in range(10000))
    assert abs(even["control"] / 10000 - 0.5) < 0.02
    skewed = [{"key": "a", "weight": 3}, {"key": "b", "weight": 1}]
    counts = Counter(
        experiment_variant_for(experiment_key="e", variants=skewed, user_id=i)["key"] for i in range(10000)
    )
    assert abs(counts["a"] / 10000 - 0.75) < 0.02
    # A different experiment key reshuffles users (no carry-over between experiments).
    other = [experiment_variant_for(experiment_key="f", variants=TWO, user_id=i)["key"] for i in range(1000)]
    same = [experiment_variant_for(experiment_key="e", variants=TWO, user_id=i)["key"] for i in range(1000)]
    assert 400 < sum(a == b for a, b in zip(other, same, strict=True)) < 600


def test_no_assignment_outside_the_window_or_for_anonymous():
    user = UserFactory()
    assert experiment_assignment_for(user=user) is None
    experiment(starts_at=timezone.now() - dt.timedelta(days=10), ends_at=timezone.now() - dt.timedelta(days=1))
    assert experiment_assignment_for(user=user) is None
    experiment(key="running")
    assert experiment_assignment_for(user=user) is not None
    assert experiment_assignment_for(user=AnonymousUser()) is None, "anonymous visitors are never assigned"


def test_wilson_interval_known_values():
    # 60/200: p = 0.3, z = 1.96: centre 0.30377, half-width 0.06302.
    low, high = estimators.wilson_interval(60, 200)
    assert (low, high) == (pytest.approx(0.24075, abs=1e-4), pytest.approx(0.36679, abs=1e-4))
    assert estimators.wilson_interval(0, 0) is None
    assert estimators.wilson_interval(0, 10)[0] == 0.0


def test_analysis_on_a_known_data_set():
    experiment()
    counts = [
        VariantCounts("thresholds", "control", 250, 200, 60, 30),
        VariantCounts("thresholds", "low-threshold", 260, 200, 100, 80),
    ]
    control, treatment = experiment_analysis(counts)
    assert (control.variant, control.decision) == ("control", "control")
    assert control.click_through_rate == pytest.approx(0.3)
    assert control.first_choice_accuracy == pytest.approx(0.5)
    assert treatment.ctr_interval == pytest.approx(estimators.wilson_interval(100, 200))
    assert treatment.accuracy_interval == pytest.approx(estimators.wilson_interval(80, 100))
    # s2 = .21/200 + .25/200 = .0023; log LR = 0.5 ln(.0023/.0123) + .01 * .04 / (2 * .0023 * .0123) = 6.2312
    assert treatment.ctr_difference == pytest.approx(0.2)
    assert treatment.p_value == pytest.approx(0.001968, rel=1e-3)
    assert treatment.decision == "better than control (click-through)"


def test_analysis_keeps_running_on_small_or_similar_samples():
    small = experiment_analysis(
        [VariantCounts("x", "control", 60, 50, 10, 5), VariantCounts("x", "b", 60, 50, 40, 30)], variant_order={}
    )
    assert small[1].decision.startswith("keep running: fewer than 100")
    assert small[1].p_value is None
    similar = experiment_analysis(
        [VariantCounts("x", "control", 300, 200, 60, 5), VariantCounts("x", "b", 300, 200, 66, 30)], variant_order={}
    )
    assert similar[1].decision == "keep running: no significant difference yet"
    assert similar[1].p_value > 0.05


def test_sequential_test_keeps_its_error_rate_under_daily_peeking():
    """A/A test peeked at after every day for 30 days: the mSPRT must reject at most ~alpha of the time."""
    rng = random.Random(7)
    rejected = 0
    runs = 200
    for _ in range(runs):
        a = [0, 0]
        b = [0, 0]
        for _day in range(30):
            for _ in range(40):
                a[0] += rng.random() < 0.3
                b[0] += rng.random() < 0.3
            a[1] += 40
            b[1] += 40
            if estimators.msprt_two_proportions(tuple(a), tuple(b)).decision in ("better", "worse"):
                rejected += 1
                break
    assert rejected / runs <= 0.05
