"""Scheduled operations jobs (the command stays for manual runs)."""

import datetime as dt

from django.conf import settings
from django.utils import timezone

from aihelper.core.scheduling import scheduled_task
from aihelper.ops.retention import retention_apply


@scheduled_task("apply_retention")
def apply_retention(timestamp: int) -> None:
    retention_apply(cutoff=timezone.now() - dt.timedelta(days=settings.MESSAGE_RETENTION_DAYS))
