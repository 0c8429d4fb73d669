"""Writes for runbooks: create/update by slug, embeddings. The only writers of Runbook rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from runbooks.embeddings import EmbeddingError, embedding_hash, get_embedder, runbook_document
from runbooks.models import Runbook, RunbookOrigin
from runbooks.versions import VERSIONED_COLUMNS, runbook_snapshot, runbook_version_record

logger = logging.getLogger(__name__)

# What runbook_upsert may set: every versioned column (runbooks/versions.py), the owning group, and what
# only records provenance or review.
EDITABLE_FIELDS = (*VERSIONED_COLUMNS, "owner_group", "front_matter_extra", "origin", "origin_source", "reviewed_at")


@transaction.atomic
def runbook_upsert(
    *,
    slug: str,
    data: dict,
    allowed_groups: Sequence[str] | None = None,
    changed_by=None,
    source: str = "import",
) -> tuple[Runbook, str]:
    """Create or update the runbook ``slug``; returns (runbook, "created" | "updated" | "unchanged").

    ``allowed_groups`` are group names (created if missing); None leaves them as they are.
    Raises ValidationError with per-field messages on bad data. A change of a versioned field appends a
    version (runbooks/versions.py; ``changed_by`` and ``source`` say who and which write path). Re-embedding
    happens on commit.
    """
    unknown = sorted(set(data) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({key: "Unknown runbook field." for key in unknown})
    runbook = Runbook.objects.select_for_update().filter(slug=slug).first()
    status = "unchanged"
    before = None
    if runbook is None:
        runbook = Runbook(slug=slug)
        status = "created"
    else:
        before = runbook_snapshot(runbook)
    for key, value in data.items():
        if getattr(runbook, key) != value:
            setattr(runbook, key, value)
            if status != "created":
                status = "updated"
    if status != "unchanged":
        runbook.full_clean(exclude=["allowed_groups"])
        runbook.save()
    if allowed_groups is not None:
        groups = [Group.objects.get_or_create(name=name)[0] for name in allowed_groups]
        current = set(runbook.allowed_groups.values_list("pk", flat=True))
        if current != {group.pk for group in groups}:
            runbook.allowed_groups.set(groups)
            if status == "unchanged":
                status = "updated"
    if status != "unchanged":
        runbook_version_record(runbook=runbook, before=before, changed_by=changed_by, source=source)
        transaction.on_commit(partial(runbooks_embed_quietly, runbook_ids=[runbook.pk]))
    return runbook, status


def runbook_before_admin_save(runbook: Runbook) -> dict | None:
    """The stored snapshot of the runbook the admin form is about to save (None when it is new). Locks the
    row until the admin's transaction ends, so two saves at once get consecutive version numbers."""
    if runbook._state.adding:
        return None
    stored = Runbook.objects.select_for_update().filter(pk=runbook.pk).first()
    if stored is None:
        return None
    runbook.version = stored.version
    return runbook_snapshot(stored)


@transaction.atomic
def runbook_save_from_admin(*, runbook: Runbook, before: dict | None, changed_by) -> Runbook:
    """Record an admin edit once the form saved the row and its groups: a version when a versioned field
    changed (runbooks/versions.py), and re-embedding on commit."""
    if runbook_version_record(runbook=runbook, before=before, changed_by=changed_by, source="admin"):
        transaction.on_commit(partial(runbooks_embed_quietly, runbook_ids=[runbook.pk]))
    return runbook


class StaleRunbookVersion(Exception):
    """The editor's form was opened on an older version than the one stored now."""

    def __init__(self, current: int) -> None:
        super().__init__(f"runbook is at version {current}")
        self.current = current


@transaction.atomic
def runbook_save_from_editor(
    *, slug: str, data: dict, owner_group, user, new: bool, expected_version: int | None = None
) -> Runbook:
    """Save what the runbook editor sent (runbooks/authoring.py): a version when something versioned
    changed, re-embedded on commit. Saving in the editor counts as the owners' review.

    ``expected_version``: the version the form was opened on. It is compared with the row locked for this
    save, so of two editors saving the same version at once the second gets StaleRunbookVersion instead of
    silently overwriting the first (the form's own check reads the row before either has saved)."""
    if not new and expected_version is not None:
        current = Runbook.objects.select_for_update().filter(slug=slug).values_list("version", flat=True).first()
        if current is not None and current != expected_version:
            raise StaleRunbookVersion(current)
    data = {**data, "owner_group": owner_group, "reviewed_at": timezone.now()}
    if new:
        data["origin"] = RunbookOrigin.ADMIN
    runbook, _ = runbook_upsert(slug=slug, data=data, changed_by=user, source="editor")
    return runbook


@dataclass
class EmbedReport:
    embedded: int = 0
    unchanged: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def runbooks_embed(
    *,
    runbook_ids: Sequence | None = None,
    slugs: Sequence[str] | None = None,
    force: bool = False,
    batch_size: int = 32,
    progress=None,
) -> EmbedReport:
    """Embed runbooks whose text or model changed (all of them with ``force``).

    ``progress`` is called with the number of runbooks handled after each batch.
    """
    started = time.perf_counter()
    embedder = get_embedder()
    queryset = Runbook.objects.order_by("slug")
    if runbook_ids is not None:
        queryset = queryset.filter(pk__in=runbook_ids)
    if slugs:
        queryset = queryset.filter(slug__in=slugs)
    report = EmbedReport()
    pending: list[tuple[Runbook, str, str]] = []
    for runbook in queryset.only("id", "slug", "name", "description", "tags", "steps", "embedding_hash"):
        text = runbook_document(runbook)
        digest = embedding_hash(text, embedder.model_name)
        if not force and runbook.embedding_hash == digest:
            report.unchanged += 1
            if progress:
                progress(1)
            continue
        pending.append((runbook, text, digest))
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        try:
            vectors = embedder.embed_documents([text for _, text, _ in batch])
        except EmbeddingError as exc:
            report.failed += len(batch)
            report.failures.extend(f"{runbook.slug}: {exc}" for runbook, _, _ in batch)
            if progress:
                progress(len(batch))
            continue
        for (runbook, _, digest), vector in zip(batch, vectors, strict=True):
            Runbook.objects.filter(pk=runbook.pk).update(
                embedding=vector, embedding_model=embedder.model_name, embedding_hash=digest
            )
            report.embedded += 1
        if progress:
            progress(len(batch))
    report.seconds = time.perf_counter() - started
    return report


def runbooks_embed_quietly(*, runbook_ids: Sequence) -> None:
    """on_commit hook: an embedding failure must not break the edit; search falls back to keywords."""
    try:
        report = runbooks_embed(runbook_ids=runbook_ids)
    except Exception:  # noqa: BLE001 - logged, and verify_phase2 / readiness report stale embeddings
        logger.exception("re-embedding runbooks %s failed", list(runbook_ids))
        return
    if report.failed:
        logger.warning("re-embedding failed: %s", report.failures)
