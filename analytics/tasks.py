"""Scheduled analytics jobs (the commands of the same names stay for manual runs)."""

import datetime as dt

from django.utils import timezone

from aihelper.core.scheduling import scheduled_task
from analytics.services.facts import analytics_facts_refresh
from analytics.services.gaps import gap_vectors_refresh
from analytics.services.learning import runbook_stats_update
from analytics.services.rollups import analytics_rollups_refresh
from runbooks.embeddings import get_embedder


@scheduled_task("refresh_analytics_facts")
def refresh_analytics_facts(timestamp: int) -> None:
    report = analytics_facts_refresh()
    analytics_rollups_refresh(settled_before=report.settled_before)


@scheduled_task("refresh_gap_vectors")
def refresh_gap_vectors(timestamp: int) -> None:
    end = timezone.now()
    gap_vectors_refresh(embedder=get_embedder(), start=end - dt.timedelta(days=90), end=end)


@scheduled_task("update_runbook_stats")
def update_runbook_stats(timestamp: int) -> None:
    runbook_stats_update()
