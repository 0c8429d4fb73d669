from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from runbooks.importers import runbooks_import
from runbooks.sync import runbooks_sync


class Command(BaseCommand):
    help = (
        "Import runbooks from JSON Lines files and/or directories of Markdown runbooks (upsert by slug). "
        "With --sync, make the runbooks of one source match one folder or file: create, update, retire "
        "(docs/authoring.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="*.jsonl files or directories of *.md runbooks")
        parser.add_argument("--strict", action="store_true", help="any invalid record aborts the whole import")
        parser.add_argument(
            "--sync",
            action="store_true",
            help="make the runbooks of this source match PATH: new ones created, changed ones updated, ones gone "
            "retired (never deleted); demo, admin-written and draft runbooks are left alone",
        )
        parser.add_argument("--dry-run", action="store_true", help="with --sync: print the plan, change nothing")
        parser.add_argument(
            "--source",
            help="the name recorded as the runbooks' origin source (default: the absolute path of PATH)",
        )

    def handle(self, *args, paths, strict, sync, dry_run, source, **options):
        if sync:
            self._sync(paths, dry_run=dry_run, source=source, strict=strict)
            return
        if dry_run:
            raise CommandError("--dry-run plans a --sync: add --sync.")

        def show(outcome):
            if outcome.status == "invalid":
                self.stderr.write(f"invalid {outcome.location} {outcome.slug or '-'}: {outcome.error}")
            elif options["verbosity"] > 1:
                self.stdout.write(f"{outcome.status} {outcome.slug}")

        report = runbooks_import(paths=paths, strict=strict, on_record=show, source=source)
        self.stdout.write(report.summary())
        if strict and report.invalid:
            raise CommandError(f"{len(report.invalid)} invalid record(s); nothing was imported (--strict).")
        if report.invalid:  # exit 1, so a scheduled import is seen to need attention; the valid ones are in
            raise CommandError(f"{len(report.invalid)} invalid record(s) (listed above); the others were imported.")

    def _sync(self, paths, *, dry_run: bool, source: str | None, strict: bool) -> None:
        if len(paths) != 1:
            raise CommandError("--sync takes exactly one folder or file: the whole source to match.")
        if strict:
            raise CommandError("--strict is for plain imports; --sync applies what it can and reports the rest.")
        prefix = "would " if dry_run else ""

        def show(action):
            line = f"{prefix}{action.action} {action.slug or '-'}{': ' + action.detail if action.detail else ''}"
            (self.stderr if action.action == "invalid" else self.stdout).write(line)

        try:
            report = runbooks_sync(path=paths[0], source=source, dry_run=dry_run, on_action=show)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.summary())
