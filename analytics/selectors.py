"""Reads other apps may use: the learned feedback per runbook."""

from __future__ import annotations

from collections.abc import Iterable

from analytics.models import RunbookStats
from analytics.sql.learning import feedback_scores


def runbook_feedback_scores(runbook_ids: Iterable) -> dict:
    """{runbook id: score in [-1, 1]} for every id asked; 0.0 when nothing was learned yet.

    Bounded so that feedback can nudge, never override, retrieval. Computed by update_runbook_stats
    only from engineers allowed to see the runbook.
    """
    ids = list(runbook_ids)
    scores = feedback_scores(ids) if ids else {}
    return {runbook_id: max(-1.0, min(1.0, float(scores.get(runbook_id, 0.0)))) for runbook_id in ids}


def runbook_stats_list():
    return RunbookStats.objects.select_related("runbook")
