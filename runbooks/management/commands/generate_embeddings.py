import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from runbooks.models import Runbook
from runbooks.services import runbooks_embed


class Command(BaseCommand):
    help = "Embed runbooks whose text or embedding model changed (all of them with --force)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="re-embed even if the text is unchanged")
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--slug", action="append", dest="slugs", default=[], help="only this runbook (repeatable)")

    def handle(self, *args, force, batch_size, slugs, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        total = Runbook.objects.filter(slug__in=slugs).count() if slugs else Runbook.objects.count()
        if slugs and total < len(set(slugs)):
            known = set(Runbook.objects.filter(slug__in=slugs).values_list("slug", flat=True))
            raise CommandError(f"Unknown slug(s): {', '.join(sorted(set(slugs) - known))}")
        with tqdm(total=total, unit="runbook", disable=options["verbosity"] == 0, file=sys.stderr) as bar:
            report = runbooks_embed(slugs=slugs or None, force=force, batch_size=batch_size, progress=bar.update)
        for failure in report.failures:
            self.stderr.write(f"failed {failure}")
        self.stdout.write(
            f"embedded {report.embedded} / unchanged {report.unchanged} / failed {report.failed} "
            f"/ {report.seconds:.1f} seconds"
        )
        if report.failed:
            raise CommandError(f"{report.failed} runbook(s) could not be embedded.")
