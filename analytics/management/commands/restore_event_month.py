from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.services.partitions import ArchiveError, event_partition_restore


class Command(BaseCommand):
    help = (
        "Load an archived month (runbook-events-YYYY-MM.csv.gz written by archive_event_month, with its "
        "manifest beside it) back into the event store for an investigation, after checking its checksums."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="the .csv.gz archive file")

    def handle(self, *args, file, **options):
        try:
            archive = event_partition_restore(path=file)
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"restored {archive.rows} events into {archive.partition}"))
