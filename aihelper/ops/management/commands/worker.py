import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from aihelper.core.task_worker import django_connections_middleware, job_connections_close, worker_connector
from runbooks.embeddings import EmbeddingError, get_embedder

logger = logging.getLogger("aihelper.worker")
UNTIL_IDLE_MAX_ROUNDS = 20


def warm_up() -> None:
    try:
        get_embedder().embed_query("warm up")
    except EmbeddingError as exc:
        # Recommendations degrade to keyword search without the model (docs/alerts.md); the worker still runs.
        logger.warning("embedding model not loaded: %s", exc)


def jobs_due(queues: list[str] | None) -> bool:
    """Jobs waiting that a worker would take now (not ones scheduled later, such as a retry in 8 s)."""
    due = ProcrastinateJob.objects.filter(status="todo").filter(
        Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=timezone.now())
    )
    return (due.filter(queue_name__in=queues) if queues else due).exists()


class Command(BaseCommand):
    help = (
        "Run the task worker: alert recommendations and the scheduled jobs (docs/operations.md, Task queue and "
        "workers). "
        "Runs until stopped (SIGINT/SIGTERM finish the jobs in hand); --until-idle runs every queued job and "
        "exits when none is left. Start more processes, on more machines, to work faster."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--until-idle", action="store_true", help="run every queued job, then exit (no schedules)"
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help=f"jobs run at once in this process (default WORKER_CONCURRENCY, {settings.WORKER_CONCURRENCY})",
        )
        parser.add_argument(
            "--queue", action="append", dest="queues", metavar="NAME", help="only this queue (repeatable)"
        )
        parser.add_argument("--name", default=None, help="worker name in logs")

    def handle(self, *args, until_idle, concurrency, queues, name, **options):
        concurrency = settings.WORKER_CONCURRENCY if concurrency is None else concurrency
        if not 1 <= concurrency <= 64:
            raise CommandError("--concurrency must be between 1 and 64.")
        if not until_idle:
            # A long-running worker loads the embedding model before it takes jobs: the first alert of a storm
            # is not the one that waits ~5 s for it.
            warm_up()
            logger.info("worker ready")
        registry = app.periodic_registry
        schedules = registry.periodic_tasks
        if until_idle:
            # A one-shot run does what is queued; schedules belong to the long-running workers.
            registry.periodic_tasks = {}
        try:
            # procrastinate's wait=False stops at the first empty fetch, while a job still running may queue
            # another (the stalled-job sweeper does): until-idle runs again until nothing is due.
            for _ in range(UNTIL_IDLE_MAX_ROUNDS if until_idle else 1):
                with app.replace_connector(worker_connector()):
                    app.run_worker(
                        wait=not until_idle,
                        concurrency=concurrency,
                        queues=queues,
                        name=name,
                        install_signal_handlers=not until_idle,
                        delete_jobs="successful",
                        task_middleware=[django_connections_middleware],
                    )
                if until_idle and not jobs_due(queues):
                    break
        finally:
            registry.periodic_tasks = schedules
            job_connections_close()
        if until_idle:
            self.stdout.write("queue empty")
