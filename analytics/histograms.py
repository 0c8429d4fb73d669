"""Durations on fixed log-scale buckets, so medians and p90 over any range come from summed daily counts.

Bucket 0 holds durations under 1 s; bucket k >= 1 holds [2^((k-1)/4), 2^(k/4)) seconds: four buckets per
doubling, each 19 % wider than the one before (``BUCKET_SQL`` in analytics/sql/common.py assigns them;
the bounds here must match it). A percentile is ``percentile_cont`` over the buckets' representative
values (the geometric middle of the bucket, 0.5 s for bucket 0), interpolated between neighbouring
ranks exactly as PostgreSQL does. Each order statistic is replaced by a value of its own bucket, so the
estimate is off by less than one bucket: at most 2^(1/8) - 1 ≈ 9 % of the exact value, plus 0.5 s when
a duration under 1 s takes part (bucket 0 spans [0, 1) s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

PER_DOUBLING = 4
RELATIVE_ERROR = 2 ** (1 / (2 * PER_DOUBLING)) - 1  # half a bucket, as a share of the value
ABSOLUTE_ERROR = 0.5  # seconds, for bucket 0


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """[low, high) seconds of ``bucket``."""
    if bucket <= 0:
        return 0.0, 1.0
    return 2 ** ((bucket - 1) / PER_DOUBLING), 2 ** (bucket / PER_DOUBLING)


def representative(bucket: int) -> float:
    """The value a bucket stands for: its geometric middle (0.5 s for bucket 0)."""
    if bucket <= 0:
        return 0.5
    return 2 ** ((bucket - 0.5) / PER_DOUBLING)


def percentile(counts: Mapping[int, int], fraction: float) -> float | None:
    """``percentile_cont(fraction)`` of the bucketed values (None when there are none)."""
    total = sum(counts.values())
    if not total:
        return None
    position = fraction * (total - 1)
    lower, upper = math.floor(position), math.ceil(position)
    values: dict[int, float] = {}
    seen = 0
    for bucket in sorted(counts):
        count = counts[bucket]
        for rank in (lower, upper):
            if seen <= rank < seen + count:
                values[rank] = representative(bucket)
        seen += count
    return values[lower] + (position - lower) * (values[upper] - values[lower])


def within_bucket_error(estimate: float, exact: float) -> bool:
    """Whether ``estimate`` is as close to ``exact`` as the module promises."""
    return abs(estimate - exact) <= ABSOLUTE_ERROR + RELATIVE_ERROR * abs(exact) + 1e-9
