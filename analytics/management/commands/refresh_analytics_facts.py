from django.core.management.base import BaseCommand

from analytics.services.facts import analytics_facts_refresh
from analytics.services.rollups import analytics_rollups_refresh


class Command(BaseCommand):
    help = (
        "Append the rollup facts of audit logs older than the 24 h click window, then the daily rollups of "
        "whole settled days per audience (incremental, resumable, safe to re-run; schedule every 15 minutes, "
        "see docs/analytics.md)."
    )

    def handle(self, *args, **options):
        report = analytics_facts_refresh(progress=self.stdout.write)
        self.stdout.write(
            self.style.SUCCESS(
                f"facts settled before {report.settled_before}: +{report.logs} logs, +{report.pairs} pairs"
            )
        )
        rollups = analytics_rollups_refresh(settled_before=report.settled_before, progress=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"daily rollups: {rollups.audiences} audiences, +{rollups.days} days"))
