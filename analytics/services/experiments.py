"""A/B experiments: which variant a user gets, and how each variant compares with the control."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from django.utils import timezone

from analytics import estimators
from analytics.models import Experiment
from analytics.sql.common import ratio
from analytics.sql.experiments import experiment_active_at
from analytics.sql.metrics import VariantCounts


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str
    overrides: dict  # SearchConfig field -> value


def experiment_active(*, now: dt.datetime | None = None) -> Experiment | None:
    """The running experiment: the earliest started whose window holds ``now``."""
    return experiment_active_at(now or timezone.now())


def experiment_variant_for(*, experiment_key: str, variants: list[dict], user_id) -> dict:
    """Deterministic: the same (experiment, user) always gets the same variant, in proportion to weights."""
    digest = hashlib.sha256(f"{experiment_key}:{user_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(float(v["weight"]) for v in variants)
    cumulative = 0.0
    for variant in variants:
        cumulative += float(variant["weight"])
        if point < cumulative:
            return variant
    return variants[-1]


def experiment_assignment_for(*, user, now: dt.datetime | None = None) -> Assignment | None:
    """The caller's variant of the running experiment (None: no experiment, or anonymous).

    The orchestrator applies ``overrides`` with SearchConfig.from_settings(**overrides) and records
    experiment and variant in ai_action_details (and so in the events).
    """
    if user is None or not user.is_authenticated:
        return None
    experiment = experiment_active(now=now)
    if experiment is None:
        return None
    variant = experiment_variant_for(experiment_key=experiment.key, variants=experiment.variants, user_id=user.pk)
    return Assignment(experiment.key, variant["key"], dict(variant.get("overrides") or {}))


@dataclass(frozen=True)
class VariantResult:
    experiment: str
    variant: str
    is_control: bool
    audit_logs: int
    recommended: int
    clicked: int
    click_through_rate: float | None
    ctr_interval: tuple[float, float] | None
    first_choice_accuracy: float | None
    accuracy_interval: tuple[float, float] | None
    ctr_difference: float | None
    p_value: float | None
    decision: str


def experiment_analysis(
    counts: list[VariantCounts], *, variant_order: dict[str, list[str]] | None = None, alpha: float = 0.05
) -> list[VariantResult]:
    """Per variant: CTR and first-choice accuracy with Wilson 95 % intervals; each non-control variant
    against the control with the mixture SPRT (always valid under daily peeking), Bonferroni over
    variants. The control is the experiment's first variant (else the first by name)."""
    variant_order = variant_order if variant_order is not None else _variant_orders({c.experiment for c in counts})
    by_experiment: dict[str, list[VariantCounts]] = {}
    for row in counts:
        by_experiment.setdefault(row.experiment, []).append(row)
    results: list[VariantResult] = []
    for key, rows in sorted(by_experiment.items()):
        order = variant_order.get(key) or []
        rows.sort(key=lambda r: (order.index(r.variant) if r.variant in order else len(order), r.variant))
        control = next((r for r in rows if order and r.variant == order[0]), rows[0])
        comparisons = max(1, len(rows) - 1)
        for row in rows:
            is_control = row is control
            if is_control:
                test = estimators.SequentialResult(None, None, "control")
            else:
                test = estimators.msprt_two_proportions(
                    (control.clicked, control.recommended), (row.clicked, row.recommended), alpha=alpha / comparisons
                )
            results.append(
                VariantResult(
                    experiment=key,
                    variant=row.variant,
                    is_control=is_control,
                    audit_logs=row.audit_logs,
                    recommended=row.recommended,
                    clicked=row.clicked,
                    click_through_rate=ratio(row.clicked, row.recommended),
                    ctr_interval=estimators.wilson_interval(row.clicked, row.recommended),
                    first_choice_accuracy=ratio(row.first_click_rank1, row.clicked),
                    accuracy_interval=estimators.wilson_interval(row.first_click_rank1, row.clicked),
                    ctr_difference=test.difference,
                    p_value=test.p_value,
                    decision=_decision_text(test),
                )
            )
    return results


def _variant_orders(keys: set[str]) -> dict[str, list[str]]:
    return {
        e.key: [v.get("key") for v in e.variants if isinstance(v, dict)]
        for e in Experiment.objects.filter(key__in=keys)
    }


def _decision_text(test: estimators.SequentialResult) -> str:
    if test.decision == "control":
        return "control"
    if test.decision == "too few data":
        return f"keep running: fewer than {estimators.MIN_SAMPLE_PER_ARM} recommended answers in an arm"
    if test.decision == "no decision":
        return "keep running: no significant difference yet"
    return f"{test.decision} than control (click-through)"
