import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.services.learning import STATS_WINDOW_DAYS, analytics_events_read_since
from analytics.services.rollups import analytics_rollups_cover
from audit.services.partitions import ArchiveError, event_partition_archive


class Command(BaseCommand):
    help = (
        "Archive a month of runbook interaction events: export its partition to <directory>/runbook-events-"
        "YYYY-MM.csv.gz with a JSON manifest (rows, checksums), read it back to verify, then detach and drop "
        f"the partition. Refused for a month ending less than {STATS_WINDOW_DAYS} days ago (learning from clicks, "
        "the gap report and runbook health read its events directly) and until the analytics facts and daily "
        "rollups cover it, so the dashboard keeps every metric (docs/analytics.md, Archive). Only the dashboard "
        "keeps an archived month. restore_event_month brings it back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, help=f"YYYY-MM, ending more than {STATS_WINDOW_DAYS} days ago")
        parser.add_argument("--directory", required=True, type=Path, help="where the archive files go")
        parser.add_argument("--yes", action="store_true", help="confirm: the partition is dropped once verified")

    def handle(self, *args, month, directory, yes, **options):
        try:
            first = dt.date.fromisoformat(f"{month}-01")
        except ValueError as exc:
            raise CommandError(f"--month must be YYYY-MM, not {month!r}.") from exc
        if not yes:
            raise CommandError("Archiving drops the partition once the file is verified: add --yes to confirm.")
        try:
            archive = event_partition_archive(
                month=first,
                directory=directory,
                metrics_kept=analytics_rollups_cover,
                events_read_since=analytics_events_read_since(timezone.now()),
            )
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"archived {archive.partition}: {archive.rows} events to {archive.path} "
                f"(sha256 {archive.csv_sha256}; manifest {archive.manifest.name}); partition dropped"
            )
        )
