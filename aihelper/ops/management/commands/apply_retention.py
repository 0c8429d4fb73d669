import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from aihelper.ops.retention import retention_apply

MAX_DAYS = 36_500


class Command(BaseCommand):
    help = (
        "Blank engineers' text older than the retention period (MESSAGE_RETENTION_DAYS, default 90): chat "
        "messages, session titles, audit log queries and answers, feedback comments, page context, execution "
        "notes, and the alert webhook bodies kept as received. Counts, ranks and clicks stay. Safe to run "
        "again; run it daily."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-days", type=int, default=None, help="override MESSAGE_RETENTION_DAYS for this run (>= 1)"
        )

    def handle(self, *args, older_than_days=None, **options):
        days = settings.MESSAGE_RETENTION_DAYS if older_than_days is None else older_than_days
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--older-than-days must be between 1 and {MAX_DAYS} (a hundred years).")
        cutoff = timezone.now() - dt.timedelta(days=days)
        report = retention_apply(cutoff=cutoff)
        self.stdout.write(f"Text older than {days} days (before {cutoff:%Y-%m-%d %H:%M %Z}) blanked:")
        for label, count in report.rows():
            self.stdout.write(f"  {label}: {count}")
