"""Learning from clicks (update_runbook_stats): position-debiased click-through, smoothed success and
staleness per runbook, stored in RunbookStats for retrieval to read (analytics.selectors)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from analytics import estimators
from analytics.models import RunbookStats, StatsRun
from analytics.sql.common import ratio
from analytics.sql.learning import event_watermark, execution_watermark, feedback_outcome_counts, feedback_rank_counts
from runbooks.models import Runbook
from runbooks.selectors import smoothed_success

STATS_WINDOW_DAYS = 180
STALE_NO_VIEWS_DAYS = 90
STALE_MIN_RANK1_IMPRESSIONS = 20
STALE_MAX_RANK1_CTR = 0.05
STALE_MIN_FINISHED = 5
STALE_MAX_FAILURE_RATE = 0.5


def analytics_events_read_since(now: dt.datetime) -> dt.datetime:
    """The oldest events analytics still reads one by one (learning from clicks here; the gap report and
    runbook health over their ranges): a month ending after this must not be archived."""
    return now - dt.timedelta(days=STATS_WINDOW_DAYS)


@dataclass(frozen=True)
class StatsReport:
    skipped: bool
    runbooks: int
    stale: int
    propensities: dict


def stale_reasons(
    *,
    rank1_impressions: int,
    rank1_clicks: int,
    succeeded: int,
    failed: int,
    last_interaction_at,
    runbook_created_at,
    now,
) -> str:
    reasons = []
    if rank1_impressions >= STALE_MIN_RANK1_IMPRESSIONS and rank1_clicks / rank1_impressions < STALE_MAX_RANK1_CTR:
        reasons.append(
            f"low click-through at rank 1 ({rank1_clicks}/{rank1_impressions} = {rank1_clicks / rank1_impressions:.0%})"
        )
    finished = succeeded + failed
    if finished >= STALE_MIN_FINISHED and failed / finished > STALE_MAX_FAILURE_RATE:
        reasons.append(f"high failure rate ({failed}/{finished} runs failed)")
    cutoff = now - dt.timedelta(days=STALE_NO_VIEWS_DAYS)
    if (last_interaction_at is None or last_interaction_at < cutoff) and runbook_created_at < cutoff:
        reasons.append(f"no clicks or views for {STALE_NO_VIEWS_DAYS} days")
    return "; ".join(reasons)


def runbook_stats_update(
    *, force: bool = False, now: dt.datetime | None = None, progress: Callable[[str], object] | None = None
) -> StatsReport:
    """Recompute RunbookStats for every enabled runbook from the last STATS_WINDOW_DAYS of events.

    Safe to re-run: everything is recomputed from the source rows and written in one transaction
    (upsert), so a second run gives the same rows. Skips (unless ``force``) when no event or finished
    execution arrived since the last run on the same day.
    """
    now = now or timezone.now()
    say = progress or (lambda message: None)
    max_ts, event_count = event_watermark()
    execution_count = execution_watermark()
    last = StatsRun.objects.first()
    if (
        not force
        and last is not None
        and last.computed_at.date() == now.date()
        and (last.max_event_timestamp, last.event_count, last.execution_count) == (max_ts, event_count, execution_count)
    ):
        say("no new events or executions since the last run today: nothing to do")
        stale = RunbookStats.objects.exclude(stale_reason="").count()
        return StatsReport(True, last.runbooks, stale, last.propensities)

    since = now - dt.timedelta(days=STATS_WINDOW_DAYS)
    say(f"reading presentations and clicks since {since:%Y-%m-%d}")
    rank_counts = feedback_rank_counts(since=since, until=now)
    counts = {(row.runbook_id, row.rank): (row.impressions, row.clicks) for row in rank_counts}
    propensities = estimators.pbm_propensities(counts)
    ctrs = estimators.ipw_ctr(counts, propensities)
    scores = estimators.feedback_scores(ctrs)
    say(f"propensities by rank: { {k: round(v, 3) for k, v in propensities.items()} }")
    outcomes = {row.runbook_id: row for row in feedback_outcome_counts(since=since, until=now)}

    rows = []
    for runbook_id, created_at in Runbook.objects.filter(enabled=True).values_list("pk", "created_at"):
        ctr = ctrs.get(runbook_id)
        outcome = outcomes.get(runbook_id)
        succeeded, failed = (outcome.succeeded, outcome.failed) if outcome else (0, 0)
        last_at = outcome.last_interaction_at if outcome else None
        rank1 = counts.get((runbook_id, 1), (0, 0))
        rows.append(
            RunbookStats(
                runbook_id=runbook_id,
                impressions=ctr.impressions if ctr else 0,
                clicks=ctr.clicks if ctr else 0,
                ctr=ratio(ctr.clicks, ctr.impressions) if ctr else None,
                debiased_ctr=ctr.debiased_ctr if ctr else None,
                rank1_impressions=rank1[0],
                rank1_clicks=rank1[1],
                succeeded=succeeded,
                failed=failed,
                smoothed_success=smoothed_success(succeeded, succeeded + failed),
                feedback_score=round(scores.get(runbook_id, 0.0), 6),
                last_interaction_at=last_at,
                stale_reason=stale_reasons(
                    rank1_impressions=rank1[0],
                    rank1_clicks=rank1[1],
                    succeeded=succeeded,
                    failed=failed,
                    last_interaction_at=last_at,
                    runbook_created_at=created_at,
                    now=now,
                ),
                computed_at=now,
            )
        )
    update_fields = [f.name for f in RunbookStats._meta.concrete_fields if not f.primary_key]
    with transaction.atomic():
        RunbookStats.objects.exclude(runbook_id__in=[row.runbook_id for row in rows]).delete()
        RunbookStats.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["runbook"], update_fields=update_fields, batch_size=1000
        )
        StatsRun.objects.create(
            computed_at=now,
            max_event_timestamp=max_ts,
            event_count=event_count,
            execution_count=execution_count,
            propensities={str(k): v for k, v in propensities.items()},
            runbooks=len(rows),
        )
    stale = sum(1 for row in rows if row.stale_reason)
    say(f"{len(rows)} runbooks updated, {stale} flagged stale")
    return StatsReport(False, len(rows), stale, propensities)
