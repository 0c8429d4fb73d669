from django.core.management.base import BaseCommand

from analytics.services.learning import runbook_stats_update


class Command(BaseCommand):
    help = (
        "Learn from clicks: position-debiased click-through, smoothed success and staleness per runbook "
        "(safe to re-run; schedule nightly, see docs/analytics.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="recompute even if nothing changed since today's run")

    def handle(self, *args, force, **options):
        report = runbook_stats_update(force=force, progress=self.stdout.write)
        if report.skipped:
            self.stdout.write("up to date")
        else:
            self.stdout.write(self.style.SUCCESS(f"{report.runbooks} runbooks, {report.stale} stale"))
