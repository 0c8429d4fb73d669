"""Monthly partitions of the event store: created ahead of time, dropped whole when old."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from audit.sql import (
    default_partition_months,
    event_id_claims_delete_before,
    monthly_partitions,
    partition_detach_and_drop,
    partition_ensure,
    partitions_ensure_around,
)


def event_partitions_ensure(*, months_ahead: int = 3) -> dict[str, int]:
    """Create monthly partitions from last month to ``months_ahead``; move DEFAULT rows into them.

    Returns {partition month: rows moved} for the partitions created now.
    """
    created: dict[str, int] = {}
    this_month = timezone.now().date().replace(day=1)
    with transaction.atomic():
        for month, moved in partitions_ensure_around(month=this_month, months_ahead=months_ahead):
            if moved >= 0:
                created[month] = moved
        # Months before last month that have rows stuck in DEFAULT get their partition too.
        for month in default_partition_months():
            moved = partition_ensure(month)
            if moved >= 0:
                created[month.strftime("%Y-%m")] = moved
    return created


def event_partitions_drop_older_than(*, months: int) -> list[str]:
    """Drop monthly partitions that end before the start of the month ``months`` ago."""
    cutoff = timezone.now().date().replace(day=1)
    for _ in range(months):
        cutoff = (cutoff - dt.timedelta(days=1)).replace(day=1)
    dropped: list[str] = []
    with transaction.atomic():
        for name in monthly_partitions():
            year, month = int(name[-7:-3]), int(name[-2:])
            if (year, month) < (cutoff.year, cutoff.month):
                partition_detach_and_drop(name)
                dropped.append(name)
        event_id_claims_delete_before(cutoff)
    return sorted(dropped)
