"""Runbooks as code: make the catalogue match a folder of Markdown (or a JSON Lines file) — issue 20.

``import_runbooks PATH --sync [--source NAME] [--dry-run]`` calls ``runbooks_sync``. Only runbooks whose
origin is that source are touched: new files create runbooks, changed ones update them (a new version,
re-embedded on commit by runbook_upsert), runbooks whose file is gone are retired (never deleted: their
versions, audit logs and analytics stay). Demo, admin-written and draft runbooks are never touched, even
when a file names their slug. A file that cannot be read is reported with its line and reason while the
rest is applied, and the runbook it would have held is not retired. A dry run plans in a transaction that
is rolled back, so the plan is exactly what a real run would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction

from runbooks.importers import import_source_name, read_sources, validation_message
from runbooks.models import Runbook, RunbookOrigin, RunbookStatus, RunbookVersion
from runbooks.services import runbook_upsert


class _DryRun(Exception):
    """Raised at the end of a dry run to roll every change back."""


@dataclass(frozen=True)
class SyncAction:
    action: str  # "create" | "update" | "retire" | "skip" | "invalid"
    slug: str
    detail: str = ""  # fields changed, why skipped, or what could not be read (with file and line)


@dataclass
class SyncReport:
    source: str
    dry_run: bool = False
    actions: list[SyncAction] = field(default_factory=list)
    unchanged: int = 0
    # Some record could not be read and its slug is unknown: retiring could retire its runbook.
    retirements_held: bool = False

    def of(self, action: str) -> list[SyncAction]:
        return [item for item in self.actions if item.action == action]

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        counts = ", ".join(
            f"{len(self.of(action))} {verb}{label}"
            for action, label in (("create", "created"), ("update", "updated"), ("retire", "retired"))
        )
        held = (
            " Retirements held back: a record without a readable slug could be one of them, or the folder has"
            " no runbook at all."
            if (self.retirements_held)
            else ""
        )
        return (
            f"Source {self.source}: {counts}, {self.unchanged} unchanged, {len(self.of('skip'))} skipped, "
            f"{len(self.of('invalid'))} invalid{' (dry run: nothing changed)' if self.dry_run else ''}.{held}"
        )


def _not_ours(runbook: Runbook, source: str) -> str:
    """Why the sync must leave ``runbook`` alone ("" when it may touch it). An import without a recorded
    source (imported before sources were recorded) is adopted by the first sync whose folder names it."""
    if runbook.origin != RunbookOrigin.IMPORT:
        return f"belongs to another origin ({runbook.get_origin_display().lower()}); left as it is"
    if runbook.origin_source not in ("", source):
        return f"imported from another source ({runbook.origin_source}); left as it is"
    if runbook.status == RunbookStatus.DRAFT:
        return "is a draft; left as it is"
    return ""


def _changed_fields(runbook: Runbook) -> str:
    version = RunbookVersion.objects.filter(runbook=runbook, number=runbook.version).first()
    return ", ".join(version.changed_fields) if version else ""


def _apply(path: Path, source: str, report: SyncReport, on_action) -> None:
    def record(action: SyncAction) -> None:
        report.actions.append(action)
        if on_action:
            on_action(action)

    seen: dict[str, str] = {}  # slug -> where it was read
    keep: set[str] = set()  # slugs whose file exists but failed: never retired for that
    for parsed in read_sources([path]):
        where = f"{parsed.source}:{parsed.line}"
        if parsed.error:
            record(SyncAction("invalid", parsed.slug, f"{where}: {parsed.error}"))
            keep.add(parsed.slug)
            report.retirements_held = report.retirements_held or not parsed.slug
            continue
        if parsed.slug in seen:
            record(SyncAction("invalid", parsed.slug, f"{where}: slug already read from {seen[parsed.slug]}"))
            continue
        seen[parsed.slug] = where
        existing = Runbook.objects.filter(slug=parsed.slug).first()
        reason = _not_ours(existing, source) if existing else ""
        if reason:
            record(SyncAction("skip", parsed.slug, reason))
            continue
        data = {**parsed.data, "origin": RunbookOrigin.IMPORT, "origin_source": source, "status": RunbookStatus.ACTIVE}
        try:
            runbook, status = runbook_upsert(
                slug=parsed.slug, data=data, allowed_groups=parsed.allowed_groups, source="sync"
            )
        except ValidationError as exc:
            record(SyncAction("invalid", parsed.slug, f"{where}: {validation_message(exc)}"))
            keep.add(parsed.slug)
            continue
        except (DatabaseError, UnicodeError) as exc:  # what the database refuses is this file's problem only
            record(SyncAction("invalid", parsed.slug, f"{where}: cannot store: {str(exc).splitlines()[0][:200]}"))
            keep.add(parsed.slug)
            continue
        if status == "created":
            record(SyncAction("create", parsed.slug))
        elif status == "updated":
            record(SyncAction("update", parsed.slug, _changed_fields(runbook)))
        else:
            report.unchanged += 1
    if not seen and not keep:
        # An empty or mistyped folder would retire every runbook of the source: nothing is read, nothing retired.
        report.retirements_held = True
    if report.retirements_held:
        return
    gone = (
        Runbook.objects.filter(origin=RunbookOrigin.IMPORT, origin_source=source, status=RunbookStatus.ACTIVE)
        .exclude(slug__in=[*seen, *keep])
        .order_by("slug")
        .values_list("slug", flat=True)
    )
    for slug in list(gone):
        try:
            runbook_upsert(slug=slug, data={"status": RunbookStatus.RETIRED}, source="sync")
        except ValidationError as exc:  # a row stored before a rule it breaks (migration 0012's names): fix by hand
            record(SyncAction("invalid", slug, f"cannot retire it as it stands: {validation_message(exc)}"))
            continue
        record(SyncAction("retire", slug, "no longer in the source"))


def runbooks_sync(*, path: Path, source: str | None = None, dry_run: bool = False, on_action=None) -> SyncReport:
    """Make the runbooks of ``source`` (default: the absolute path) match ``path``; see the module doc.

    ``on_action`` is called with each SyncAction as it is decided (progress for the command).
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    report = SyncReport(source=import_source_name(path, source), dry_run=dry_run)
    try:
        with transaction.atomic():
            _apply(path, report.source, report, on_action)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return report
