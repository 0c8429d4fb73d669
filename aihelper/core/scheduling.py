"""Scheduled jobs on the task queue (procrastinate periodic tasks; docs/operations.md, "Task queue and workers").

Each app declares its own in its ``tasks.py`` with :func:`scheduled_task`. Every worker process runs the
scheduler, and procrastinate defers each tick once across all of them (a unique row per task and tick);
``queueing_lock`` keeps at most one waiting job per schedule and ``lock`` keeps two workers from running one
at the same time. The management command of the same name stays for manual runs.
"""

from collections.abc import Callable

from django.conf import settings
from procrastinate.contrib.django import app

SCHEDULED_QUEUE = "scheduled"


def scheduled_task(name: str, *, lock: bool = True) -> Callable:
    """Register ``func(timestamp)`` as the job ``scheduled.<name>`` run on ``settings.TASK_SCHEDULES[name]``
    (no schedule when that cron line is empty). ``lock=False`` for a job that must run even while an earlier
    run of it is stuck (the stalled-job sweeper: a lock held by its own dead run would stop it for good)."""

    def decorate(func: Callable) -> Callable:
        task = app.task(
            name=f"scheduled.{name}",
            queue=SCHEDULED_QUEUE,
            queueing_lock=f"scheduled.{name}",
            lock=f"scheduled.{name}" if lock else None,
            pass_context=False,
        )(func)
        cron = settings.TASK_SCHEDULES[name]
        if cron:
            task = app.periodic(cron=cron, periodic_id=name)(task)
        return task

    return decorate
