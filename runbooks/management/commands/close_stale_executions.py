from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from runbooks.executions import executions_close_stale

MAX_HOURS = 24 * 3660


class Command(BaseCommand):
    help = "Mark executions still in progress after N hours as abandoned (safe to re-run; schedule hourly)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-hours",
            type=float,
            default=settings.EXECUTION_ABANDON_AFTER_HOURS,
            help="default: EXECUTION_ABANDON_AFTER_HOURS (%(default)s)",
        )

    def handle(self, *args, older_than_hours, **options):
        if not 0 < older_than_hours <= MAX_HOURS:
            raise CommandError(f"--older-than-hours must be positive and at most {MAX_HOURS} (ten years).")
        closed = executions_close_stale(older_than_hours=older_than_hours)
        self.stdout.write(f"{closed} executions marked abandoned")
