"""The rollup refresh: facts of settled audit logs, so the dashboard reads them instead of the events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from analytics.models import FactsState
from analytics.sql.common import ATTRIBUTION_WINDOW
from analytics.sql.facts import audit_log_first_created, facts_rebuild

# A log is settled when no click or funnel step can still be attributed to it (24 h window + margin).
SETTLE_AFTER = ATTRIBUTION_WINDOW + dt.timedelta(minutes=5)
FACTS_CHUNK = dt.timedelta(days=7)


@dataclass(frozen=True)
class FactsReport:
    settled_before: dt.datetime | None
    logs: int
    pairs: int


def analytics_facts_settled_before() -> dt.datetime | None:
    return FactsState.objects.filter(pk=1).values_list("settled_before", flat=True).first()


def analytics_facts_refresh(
    *, now: dt.datetime | None = None, progress: Callable[[str], object] | None = None
) -> FactsReport:
    """Append the facts of audit logs that settled since the last run, a week per transaction.

    Incremental and resumable: each chunk commits together with the watermark, so a re-run (or a run
    after a crash) continues where the last one stopped and never writes a log twice. Metrics read
    facts before the watermark and compute newer logs live, so a stale watermark only costs speed.
    """
    say = progress or (lambda message: None)
    target = (now or timezone.now()) - SETTLE_AFTER
    state, _ = FactsState.objects.get_or_create(pk=1)
    cursor = state.settled_before or audit_log_first_created()
    logs = pairs = 0
    if cursor is None:
        say("no audit logs yet")
        return FactsReport(state.settled_before, 0, 0)
    while cursor < target:
        chunk_end = min(cursor + FACTS_CHUNK, target)
        with transaction.atomic():
            state = FactsState.objects.select_for_update().get(pk=1)
            if state.settled_before and state.settled_before > cursor:
                cursor = state.settled_before  # another run got here first
                continue
            written = facts_rebuild(start=cursor, end=chunk_end)
            state.settled_before, state.refreshed_at = chunk_end, timezone.now()
            state.save()
        logs, pairs = logs + written[0], pairs + written[1]
        say(f"facts up to {chunk_end:%Y-%m-%d %H:%M}: {written[0]} logs, {written[1]} presentations")
        cursor = chunk_end
    return FactsReport(cursor, logs, pairs)
