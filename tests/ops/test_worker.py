"""The task worker (procrastinate) runs for real: jobs deferred through Django's connection, a worker process
that takes them from PostgreSQL, the scheduled jobs of every app and their locks."""

import datetime as dt

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone
from procrastinate import exceptions as procrastinate_exceptions
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from alerts.models import RecommendationState
from alerts.tasks import recommend_alert
from runbooks.models import ExecutionStatus, RunbookExecution
from tests.alerts.alert_rows import alert_row
from tests.runbooks.factories import RunbookExecutionFactory

SCHEDULED = {
    "refresh_analytics_facts",
    "refresh_gap_vectors",
    "update_runbook_stats",
    "close_stale_executions",
    "ensure_event_partitions",
    "apply_retention",
    "retry_stalled_jobs",
}


def test_every_periodic_job_is_scheduled_with_its_cron_line():
    scheduled = {
        periodic_id: periodic.cron for (_task, periodic_id), periodic in app.periodic_registry.periodic_tasks.items()
    }
    assert scheduled == {name: settings.TASK_SCHEDULES[name] for name in SCHEDULED}


@pytest.mark.usefixtures("empty_task_queue")
def test_worker_until_idle_runs_a_queued_scheduled_job_and_exits(capsys):
    stale = RunbookExecutionFactory(started_at=timezone.now() - dt.timedelta(hours=48))
    fresh = RunbookExecutionFactory()
    app.tasks["scheduled.close_stale_executions"].defer(timestamp=0)
    assert ProcrastinateJob.objects.filter(status="todo").count() == 1

    call_command("worker", "--until-idle")

    assert RunbookExecution.objects.get(pk=stale.pk).status == ExecutionStatus.ABANDONED
    assert RunbookExecution.objects.get(pk=fresh.pk).status == ExecutionStatus.IN_PROGRESS
    # Successful jobs are deleted; nothing is left waiting.
    assert not ProcrastinateJob.objects.exists()
    assert capsys.readouterr().out.strip().endswith("queue empty")


@pytest.mark.usefixtures("empty_task_queue")
def test_a_scheduled_job_waits_at_most_once():
    task = app.tasks["scheduled.update_runbook_stats"]
    task.defer(timestamp=1)
    with pytest.raises(procrastinate_exceptions.AlreadyEnqueued):
        task.defer(timestamp=2)
    assert ProcrastinateJob.objects.count() == 1


@pytest.mark.usefixtures("empty_task_queue")
def test_a_job_deferred_in_a_rolled_back_transaction_never_runs():
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        app.tasks["scheduled.close_stale_executions"].defer(timestamp=0)
        raise Rollback
    assert not ProcrastinateJob.objects.exists()


@pytest.mark.usefixtures("empty_task_queue")
def test_a_failing_job_is_kept_as_failed_with_the_others_done():
    stale = RunbookExecutionFactory(started_at=timezone.now() - dt.timedelta(hours=48))
    app.tasks["scheduled.ensure_event_partitions"].defer(timestamp=0)
    # A job whose task does not exist (a newer web process deferred it) fails; the worker goes on.
    app.configure_task("no.such.task", queue="scheduled").defer()
    app.tasks["scheduled.close_stale_executions"].defer(timestamp=0)

    call_command("worker", "--until-idle", "--concurrency", "1")

    assert RunbookExecution.objects.get(pk=stale.pk).status == ExecutionStatus.ABANDONED
    assert list(ProcrastinateJob.objects.values_list("task_name", "status")) == [("no.such.task", "failed")]


def test_worker_refuses_a_nonsense_concurrency():
    with pytest.raises(CommandError, match="between 1 and 64"):
        call_command("worker", "--until-idle", "--concurrency", "0")


def _stall(task_name: str, *, attempts: int = 0) -> None:
    """A job its worker took and then died with: `doing`, its worker gone (procrastinate prunes dead workers)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL, attempts = %s WHERE task_name = %s",
            [attempts, task_name],
        )


@pytest.mark.usefixtures("empty_task_queue")
def test_a_job_whose_worker_died_is_queued_again_and_runs():
    stale = RunbookExecutionFactory(started_at=timezone.now() - dt.timedelta(hours=48))
    app.tasks["scheduled.close_stale_executions"].defer(timestamp=0)
    _stall("scheduled.close_stale_executions")
    call_command("worker", "--until-idle")
    # Nothing picks it up by itself: it stays `doing`, holding its schedule's lock.
    assert RunbookExecution.objects.get(pk=stale.pk).status == ExecutionStatus.IN_PROGRESS

    app.tasks["scheduled.retry_stalled_jobs"].defer(timestamp=0)
    call_command("worker", "--until-idle")

    assert RunbookExecution.objects.get(pk=stale.pk).status == ExecutionStatus.ABANDONED
    assert not ProcrastinateJob.objects.exists()


@pytest.mark.usefixtures("empty_task_queue")
def test_a_job_that_keeps_killing_its_workers_is_failed_and_its_alert_says_so():
    alert = alert_row(alertname="NodeDiskFull")
    recommend_alert.defer(alert_id=alert.pk)
    _stall("alerts.recommend", attempts=4)
    app.tasks["scheduled.retry_stalled_jobs"].defer(timestamp=0)

    call_command("worker", "--until-idle")

    alert.refresh_from_db()
    assert alert.recommendation_state == RecommendationState.FAILED
    assert list(ProcrastinateJob.objects.values_list("task_name", "status")) == [("alerts.recommend", "failed")]


@pytest.mark.usefixtures("empty_task_queue")
def test_the_sweeper_is_not_stopped_by_its_own_dead_run():
    sweeper = app.tasks["scheduled.retry_stalled_jobs"]
    sweeper.defer(timestamp=0)
    _stall("scheduled.retry_stalled_jobs")  # a worker died while sweeping
    sweeper.defer(timestamp=1)

    call_command("worker", "--until-idle")

    # The next sweep ran (no lock held by the dead one), queued the dead run again, and that ran too.
    assert not ProcrastinateJob.objects.exists()
