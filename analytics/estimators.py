"""Pure statistics (no Django): click-model debiasing, interval estimates, the sequential test.

Shared by ``update_runbook_stats`` (through analytics.services.learning) and benchmarks/feedback_simulation.py,
so the simulation measures exactly the code that ships.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

# --- Position-based click model ------------------------------------------------------------------

MIN_PROPENSITY = 0.05  # clip: one click at a rarely examined rank must not dominate an estimate
SHRINK_IMPRESSIONS = 20.0  # pseudo-impressions at the mean: few impressions -> score near 0


def pbm_propensities(counts: Mapping[tuple[Hashable, int], tuple[int, int]], *, iterations: int = 200) -> dict:
    """Examination probability per rank, estimated from the click log by EM on the position-based model.

    PBM: P(click | runbook r shown at rank k) = theta_k * gamma_r (examined, then relevant). The same
    runbook shown at different ranks (rankings differ per query) identifies theta; theta_1 is fixed at 1.
    ``counts``: {(runbook, rank): (impressions, clicks)}. Returns {rank: theta}.
    """
    cells = [(r, k, n, c) for (r, k), (n, c) in counts.items() if n > 0]
    if not cells:
        return {}
    ranks = sorted({k for _, k, _, _ in cells})
    theta = {k: 1.0 / k for k in ranks}
    gamma = dict.fromkeys({r for r, _, _, _ in cells}, 0.5)
    for _ in range(iterations):
        exam_num: dict = defaultdict(float)
        exam_den: dict = defaultdict(float)
        rel_num: dict = defaultdict(float)
        rel_den: dict = defaultdict(float)
        for r, k, n, c in cells:
            t, g = theta[k], gamma[r]
            miss = max(1e-12, 1.0 - t * g)
            exam_num[k] += c + (n - c) * t * (1.0 - g) / miss
            exam_den[k] += n
            rel_num[r] += c + (n - c) * g * (1.0 - t) / miss
            rel_den[r] += n
        theta = {k: min(1.0, max(1e-6, exam_num[k] / exam_den[k])) for k in ranks}
        gamma = {r: min(1.0, max(1e-6, rel_num[r] / rel_den[r])) for r in gamma}
    top = theta[ranks[0]]
    return {k: min(1.0, max(MIN_PROPENSITY, theta[k] / top)) for k in ranks}


@dataclass(frozen=True)
class DebiasedCtr:
    impressions: int
    clicks: int
    weighted_clicks: float  # sum of clicks / propensity(rank)
    debiased_ctr: float | None  # weighted_clicks / impressions, clipped to [0, 1]


def ipw_ctr(counts: Mapping[tuple[Hashable, int], tuple[int, int]], propensities: Mapping[int, float]) -> dict:
    """Inverse-propensity weighted click-through per runbook: unbiased for its relevance under the PBM."""
    totals: dict = defaultdict(lambda: [0, 0, 0.0])
    for (runbook, rank), (impressions, clicks) in counts.items():
        total = totals[runbook]
        total[0] += impressions
        total[1] += clicks
        total[2] += clicks / propensities.get(rank, MIN_PROPENSITY)
    return {runbook: DebiasedCtr(n, c, w, None if not n else min(1.0, w / n)) for runbook, (n, c, w) in totals.items()}


def feedback_scores(ctrs: Mapping[Hashable, DebiasedCtr], *, shrink: float = SHRINK_IMPRESSIONS) -> dict:
    """Bounded influence in [-1, 1]: the debiased CTR shrunk towards the mean CTR, relative to the mean.

    0 means "no evidence": a runbook with few impressions stays near 0; +1 / -1 only with much data.
    """
    total_n = sum(c.impressions for c in ctrs.values())
    if not total_n:
        return dict.fromkeys(ctrs, 0.0)
    mean = min(1.0, sum(c.weighted_clicks for c in ctrs.values()) / total_n)
    spread = max(mean, 1.0 - mean, 1e-9)
    scores = {}
    for runbook, c in ctrs.items():
        shrunk = (min(c.weighted_clicks, c.impressions) + shrink * mean) / (c.impressions + shrink)
        scores[runbook] = max(-1.0, min(1.0, (shrunk - mean) / spread))
    return scores


def naive_feedback_scores(counts: Mapping[tuple[Hashable, int], tuple[int, int]]) -> dict:
    """The baseline the simulation compares against: raw CTR, same shrinkage and scale, no debiasing."""
    return feedback_scores(ipw_ctr(counts, defaultdict(lambda: 1.0)))


# --- Intervals and the sequential test ---------------------------------------------------------

Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, *, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval (95 % by default); None with no trials."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


MSPRT_TAU2 = 0.01  # mixing prior variance of the difference: effects of about +-0.1 are plausible
MIN_SAMPLE_PER_ARM = 100  # guard: the normal approximation needs this many trials per arm


@dataclass(frozen=True)
class SequentialResult:
    difference: float | None  # treatment rate - control rate
    p_value: float | None  # always-valid p-value
    decision: str  # "better" | "worse" | "no decision" | "too few data"


def msprt_two_proportions(
    control: tuple[int, int], treatment: tuple[int, int], *, alpha: float = 0.05, tau2: float = MSPRT_TAU2
) -> SequentialResult:
    """Mixture sequential probability ratio test (Johari et al., "Always valid inference", 2017).

    With the normal approximation theta_hat ~ N(theta, s2), s2 = pA(1-pA)/nA + pB(1-pB)/nB, and a
    N(0, tau2) mixture over theta, the likelihood ratio against theta = 0 is
    sqrt(s2 / (s2 + tau2)) * exp(tau2 * theta_hat^2 / (2 * s2 * (s2 + tau2))). Its inverse is an
    always-valid p-value: rejecting when it drops below alpha keeps the error rate at alpha however
    often the dashboard is looked at. (The running minimum would be smaller still; using the current
    value is conservative and needs no history.)
    """
    (ca, na), (cb, nb) = control, treatment
    if min(na, nb) < MIN_SAMPLE_PER_ARM:
        diff = (cb / nb - ca / na) if na and nb else None
        return SequentialResult(diff, None, "too few data")
    pa, pb = ca / na, cb / nb
    diff = pb - pa
    # Keep the variance away from 0 when a rate is exactly 0 or 1.
    s2 = max(pa * (1 - pa), 0.25 / na) / na + max(pb * (1 - pb), 0.25 / nb) / nb
    log_lr = 0.5 * math.log(s2 / (s2 + tau2)) + tau2 * diff * diff / (2 * s2 * (s2 + tau2))
    p_value = min(1.0, math.exp(-log_lr))
    if p_value <= alpha:
        return SequentialResult(diff, p_value, "better" if diff > 0 else "worse")
    return SequentialResult(diff, p_value, "no decision")
