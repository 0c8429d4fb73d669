"""Scheduled operations jobs (the commands stay for manual runs)."""

import datetime as dt
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import timezone
from procrastinate.contrib.django import app
from procrastinate.jobs import Status

from aihelper.core.scheduling import scheduled_task
from aihelper.ops.retention import retention_apply
from alerts.recommending import alert_recommendation_failed
from alerts.tasks import RECOMMEND_TASK

logger = logging.getLogger("aihelper.worker")

# A job whose worker died this many times is failed rather than retried again (it may be what kills them).
STALLED_MAX_ATTEMPTS = 5


def _alert_failed(alert_id: int) -> None:
    # On a thread of its own (this task is async): its connection is closed with it.
    try:
        alert_recommendation_failed(alert_id=alert_id)
    finally:
        connections.close_all()


@scheduled_task("apply_retention")
def apply_retention(timestamp: int) -> None:
    retention_apply(cutoff=timezone.now() - dt.timedelta(days=settings.MESSAGE_RETENTION_DAYS))


@scheduled_task("retry_stalled_jobs", lock=False)
async def retry_stalled_jobs(timestamp: int) -> int:
    """Jobs left ``doing`` by a worker that died (killed, out of memory, its machine gone: no heartbeat for
    ``WORKER_STALLED_SECONDS``) go back to the queue; procrastinate does not do it by itself, and a stalled
    scheduled job would hold its lock forever. Without a lock of its own, so its own stalled run is swept
    too; one job that cannot be handled (another sweep got there first) does not stop the others. Returns how
    many were handled."""
    stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=settings.WORKER_STALLED_SECONDS)
    handled = 0
    for job in stalled:
        try:
            if job.attempts + 1 >= STALLED_MAX_ATTEMPTS:
                await app.job_manager.finish_job(job=job, status=Status.FAILED, delete_job=False)
                alert_id = job.task_kwargs.get("alert_id")
                if job.task_name == RECOMMEND_TASK and isinstance(alert_id, int):
                    await sync_to_async(_alert_failed, thread_sensitive=False)(alert_id)
                logger.error("stalled job %s (%s) failed after %s attempts", job.id, job.task_name, job.attempts + 1)
            else:
                await app.job_manager.retry_job(job)
                logger.warning("stalled job %s (%s) queued again (its worker stopped)", job.id, job.task_name)
        except Exception:
            logger.exception("stalled job %s (%s) could not be handled", job.id, job.task_name)
            continue
        handled += 1
    return handled
