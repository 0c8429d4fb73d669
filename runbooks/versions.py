"""Every version of every runbook, kept (issue 20): a table of our own, written by the services.

Each save that changes a versioned field raises ``Runbook.version`` and appends a ``RunbookVersion``
holding the whole snapshot (who, when, which write path, which fields changed), in the transaction of
the save. The audit log records the number an answer presented (``PresentedSolution.runbook_version``),
so what an engineer was shown last week is the snapshot with that number. Why a table of our own rather
than django-simple-history or django-reversion: docs/decisions.md.
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.utils import timezone

from runbooks.models import Runbook, RunbookVersion

# Columns whose change makes a new version: what a reader sees, plus lifecycle, access and ownership.
VERSIONED_COLUMNS = (
    "name",
    "display_title",
    "description",
    "tags",
    "steps",
    "body_markdown",
    "source_url",
    "aliases",
    "service",
    "category",
    "is_automated",
    "automation_ref",
    "enabled",
    "status",
    "review_interval_days",
)
# Kept by name (readable in a diff, and still readable after a group is renamed or deleted).
VERSIONED_RELATIONS = ("owner_group", "allowed_groups")
VERSIONED_FIELDS = VERSIONED_COLUMNS + VERSIONED_RELATIONS


def runbook_snapshot(runbook: Runbook, *, allowed_groups: list[str] | None = None) -> dict:
    """The versioned fields of ``runbook`` as JSON values. ``allowed_groups`` (names) saves a query when the
    caller knows them; otherwise they are read (an unsaved runbook has none)."""
    snapshot = {name: getattr(runbook, name) for name in VERSIONED_COLUMNS}
    snapshot["tags"] = list(snapshot["tags"] or [])
    snapshot["steps"] = list(snapshot["steps"] or [])
    snapshot["aliases"] = list(snapshot["aliases"] or [])
    owner = Group.objects.filter(pk=runbook.owner_group_id).values_list("name", flat=True).first()
    snapshot["owner_group"] = owner or ""
    if allowed_groups is None:
        allowed_groups = list(runbook.allowed_groups.values_list("name", flat=True)) if runbook.pk else []
    snapshot["allowed_groups"] = sorted(allowed_groups)
    return snapshot


def runbook_version_record(
    *, runbook: Runbook, before: dict | None, changed_by=None, source: str, note_unrecorded: bool = True
) -> RunbookVersion | None:
    """Append the version ``runbook`` has now (saved already, inside the caller's transaction).

    ``before``: the snapshot taken before the change, None for a runbook just created. Nothing changed
    → None and the version stays. A changed runbook gets the next number. A runbook whose current
    version has no row (written before versions were kept, or by a test factory) first gets that row
    from ``before``, so the previous version is never lost.
    """
    after = runbook_snapshot(runbook)
    now = timezone.now()
    if before is None:
        changed = [name for name in VERSIONED_FIELDS if after[name] not in ("", [], None, False)]
        number = runbook.version
    else:
        changed = [name for name in VERSIONED_FIELDS if before.get(name) != after[name]]
        if not changed:
            return None
        if note_unrecorded and not RunbookVersion.objects.filter(runbook=runbook, number=runbook.version).exists():
            RunbookVersion.objects.create(
                runbook=runbook,
                number=runbook.version,
                snapshot=before,
                changed_at=runbook.created_at or now,
                source="unrecorded",
            )
        number = runbook.version + 1
        Runbook.objects.filter(pk=runbook.pk).update(version=number)
        runbook.version = number
    return RunbookVersion.objects.create(
        runbook=runbook,
        number=number,
        snapshot=after,
        changed_fields=changed,
        changed_by=changed_by if getattr(changed_by, "pk", None) else None,
        changed_at=now,
        source=source,
    )


def runbook_versions(runbook_id) -> QuerySet[RunbookVersion]:
    """Newest first, with who saved each."""
    return RunbookVersion.objects.filter(runbook_id=runbook_id).select_related("changed_by").order_by("-number")


def runbook_version_pair(runbook_id, number: int) -> tuple[RunbookVersion | None, RunbookVersion | None]:
    """(version ``number``, the version before it that was recorded) — either may be None."""
    version = RunbookVersion.objects.filter(runbook_id=runbook_id, number=number).select_related("changed_by").first()
    previous = (
        RunbookVersion.objects.filter(runbook_id=runbook_id, number__lt=number).order_by("-number").first()
        if version
        else None
    )
    return version, previous
