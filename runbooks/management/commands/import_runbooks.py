from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from runbooks.importers import runbooks_import


class Command(BaseCommand):
    help = "Import runbooks from JSON Lines files and/or directories of Markdown runbooks (upsert by slug)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="*.jsonl files or directories of *.md runbooks")
        parser.add_argument("--strict", action="store_true", help="any invalid record aborts the whole import")

    def handle(self, *args, paths, strict, **options):
        def show(outcome):
            if outcome.status == "invalid":
                self.stderr.write(f"invalid {outcome.location} {outcome.slug or '-'}: {outcome.error}")
            elif options["verbosity"] > 1:
                self.stdout.write(f"{outcome.status} {outcome.slug}")

        report = runbooks_import(paths=paths, strict=strict, on_record=show)
        self.stdout.write(report.summary())
        if strict and report.invalid:
            raise CommandError(f"{len(report.invalid)} invalid record(s); nothing was imported (--strict).")
