from django.core.management.base import BaseCommand, CommandError

from audit.services.partitions import event_partitions_drop_older_than, event_partitions_ensure


class Command(BaseCommand):
    help = (
        "Create monthly partitions of runbook_interaction_events (last month to N months ahead), "
        "moving rows that landed in the DEFAULT partition; optionally drop old partitions. Safe to re-run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--months-ahead", type=int, default=3)
        parser.add_argument("--drop-older-than", type=int, metavar="MONTHS")
        parser.add_argument("--yes", action="store_true", help="confirm --drop-older-than (data is deleted)")

    def handle(self, *args, months_ahead, drop_older_than, yes, **options):
        if months_ahead < 0 or months_ahead > 36:
            raise CommandError("--months-ahead must be between 0 and 36.")
        if drop_older_than is not None and drop_older_than < 1:  # every argument checked before any work
            raise CommandError("--drop-older-than must be at least 1 month.")
        if drop_older_than is not None and not yes:
            raise CommandError("--drop-older-than deletes events: add --yes to confirm.")
        created = event_partitions_ensure(months_ahead=months_ahead)
        for month, moved in sorted(created.items()):
            self.stdout.write(f"created partition {month} (moved {moved} rows from DEFAULT)")
        if not created:
            self.stdout.write("all partitions already exist")
        if drop_older_than is not None:
            dropped = event_partitions_drop_older_than(months=drop_older_than)
            self.stdout.write(f"dropped {len(dropped)} partitions: {', '.join(dropped) or '-'}")
