import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.services.gaps import gap_vectors_refresh
from runbooks.embeddings import get_embedder


class Command(BaseCommand):
    help = (
        "Embed the questions of the knowledge-gap report (no recommendation, not helpful, does not fit, not "
        "clicked, failed) that have no vector yet, so Admin → Analytics → Gaps can group them. Safe to re-run; "
        "schedule hourly (docs/analytics.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=90, help="how far back (default 90, at most 400)")

    def handle(self, *args, days, **options):
        if not 1 <= days <= 400:
            raise CommandError("--days must be between 1 and 400.")
        end = timezone.now()
        embedded = gap_vectors_refresh(
            embedder=get_embedder(), start=end - dt.timedelta(days=days), end=end, progress=self.stdout.write
        )
        self.stdout.write(self.style.SUCCESS(f"embedded {embedded} questions"))
