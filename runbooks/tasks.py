"""Scheduled runbook jobs (the command stays for manual runs)."""

from django.conf import settings

from aihelper.core.scheduling import scheduled_task
from runbooks.executions import executions_close_stale


@scheduled_task("close_stale_executions")
def close_stale_executions(timestamp: int) -> None:
    executions_close_stale(older_than_hours=settings.EXECUTION_ABANDON_AFTER_HOURS)
