"""Monthly partitions of the event store: created ahead of time, archived or dropped whole when old."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit.sql import (
    default_partition_months,
    event_id_claims_delete_before,
    event_id_claims_delete_between,
    events_import,
    monthly_partitions,
    partition_detach_and_drop,
    partition_ensure,
    partition_export,
    partition_name,
    partition_row_count,
    partitions_ensure_around,
)


def event_partitions_ensure(*, months_ahead: int = 3) -> dict[str, int]:
    """Create monthly partitions from last month to ``months_ahead``; move DEFAULT rows into them.

    Returns {partition month: rows moved} for the partitions created now.
    """
    created: dict[str, int] = {}
    this_month = timezone.now().date().replace(day=1)
    with transaction.atomic():
        for month, moved in partitions_ensure_around(month=this_month, months_ahead=months_ahead):
            if moved >= 0:
                created[month] = moved
        # Months before last month that have rows stuck in DEFAULT get their partition too.
        for month in default_partition_months():
            moved = partition_ensure(month)
            if moved >= 0:
                created[month.strftime("%Y-%m")] = moved
    return created


def event_partitions_drop_older_than(*, months: int) -> list[str]:
    """Drop monthly partitions that end before the start of the month ``months`` ago."""
    cutoff = timezone.now().date().replace(day=1)
    for _ in range(months):
        cutoff = (cutoff - dt.timedelta(days=1)).replace(day=1)
    dropped: list[str] = []
    with transaction.atomic():
        for name in monthly_partitions():
            year, month = int(name[-7:-3]), int(name[-2:])
            if (year, month) < (cutoff.year, cutoff.month):
                partition_detach_and_drop(name)
                dropped.append(name)
        event_id_claims_delete_before(cutoff)
    return sorted(dropped)


# --- Archive: export a month, verify it, then detach and drop (docs/operations.md, docs/analytics.md) ----
ARCHIVE_FORMAT = "csv.gz"  # RFC 4180 CSV with a header row, gzip-compressed: any analyst's tool reads it
READ_BLOCK = 1 << 20
# Python's csv refuses fields over 128 KiB by default; an event's page_context or metadata may be larger.
CSV_FIELD_LIMIT = 2**31 - 1


class ArchiveError(Exception):
    """An archive or restore that cannot go ahead, in words."""


@dataclass(frozen=True)
class EventArchive:
    month: dt.date
    partition: str
    rows: int
    csv_sha256: str  # of the uncompressed CSV
    file_sha256: str  # of the .csv.gz file as written
    path: Path
    manifest: Path


def archive_paths(directory: Path, month: dt.date) -> tuple[Path, Path]:
    stem = f"runbook-events-{month:%Y-%m}"
    return directory / f"{stem}.{ARCHIVE_FORMAT}", directory / f"{stem}.json"


def _month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
    return start, (start + dt.timedelta(days=32)).replace(day=1)


def _read_csv(path: Path) -> tuple[int, str]:
    """(data rows, sha256 of the uncompressed CSV) of an archive file, read back from disk."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as raw:
        while block := raw.read(READ_BLOCK):
            digest.update(block)
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
        rows = sum(1 for _ in csv.reader(text)) - 1  # the header
    return rows, digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        while block := raw.read(READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def event_partition_archive(
    *,
    month: dt.date,
    directory: Path,
    metrics_kept: Callable[[dt.datetime], bool] = lambda end: True,
    events_read_since: dt.datetime | None = None,
) -> EventArchive:
    """Export the partition of ``month`` to ``directory`` (CSV.gz and a JSON manifest), read the file back
    and check its row count and checksum against the database, then detach and drop the partition and the
    month's event-id claims, all in one transaction. Only months before last month (the partitions
    ``event_partitions_ensure`` keeps are last month onwards) that end before ``events_read_since`` (what
    analytics still reads event by event), and only once ``metrics_kept(end of the month)`` (analytics
    passes whether its rollups cover it: this layer cannot look). Raises ArchiveError."""
    month = month.replace(day=1)
    name = partition_name(month)
    last_month = (timezone.now().date().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    if month >= last_month:
        raise ArchiveError(f"Only months before {last_month:%Y-%m} can be archived, not {month:%Y-%m}.")
    if name not in monthly_partitions():
        raise ArchiveError(f"There is no partition for {month:%Y-%m}: archived already, or never created.")
    month_end = _month_bounds(month)[1]
    if events_read_since is not None and month_end > events_read_since:
        raise ArchiveError(
            f"{month:%Y-%m} is still read event by event (learning from clicks, the gap report and runbook "
            f"health read the events since {events_read_since:%Y-%m-%d}): archive it from "
            f"{month_end + (timezone.now() - events_read_since):%Y-%m-%d} on."
        )
    if not metrics_kept(month_end):
        raise ArchiveError(
            f"The analytics rollups do not cover {month:%Y-%m} yet: run refresh_analytics_facts first, or the "
            "dashboard would lose that month's metrics."
        )
    path, manifest = archive_paths(directory, month)
    if path.exists() or manifest.exists():
        raise ArchiveError(f"{path} or its manifest already exists; move it away first.")
    partial, manifest_partial = (p.with_name(p.name + ".partial") for p in (path, manifest))
    try:
        with transaction.atomic():
            archive = _export_verified(name, month, (partial, path), (manifest_partial, manifest))
            partition_detach_and_drop(name)
            event_id_claims_delete_between(*_month_bounds(month))
    except (OSError, csv.Error) as exc:
        _remove(partial, path, manifest_partial)
        raise ArchiveError(f"The archive could not be written to {directory} ({exc}): nothing was dropped.") from exc
    except BaseException:
        _remove(partial, path, manifest_partial)
        raise
    # Only a committed drop gets a manifest under its own name: restore needs one, so an archive whose
    # partition is still there is never mistaken for a finished one.
    try:
        manifest_partial.rename(manifest)
        _fsync_directory(directory)
    except OSError as exc:
        raise ArchiveError(
            f"The partition was dropped and archived, but the manifest could not be renamed ({exc}): rename "
            f"{manifest_partial} to {manifest.name} by hand."
        ) from exc
    return archive


def _export_verified(
    name: str, month: dt.date, files: tuple[Path, Path], manifests: tuple[Path, Path]
) -> EventArchive:
    """Export the partition to the partial file, read it back and compare, then move it to its name and write
    the manifest under its partial name, each on disk (fsync'd, and their directory) before the drop commits."""
    (partial, path), (manifest_partial, manifest) = files, manifests
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with partial.open("wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb") as out:

            def write(block: bytes) -> None:
                digest.update(block)
                out.write(block)

            partition_export(name, write)
        raw.flush()
        os.fsync(raw.fileno())
    rows = partition_row_count(name)
    written_rows, written_sha = _read_csv(partial)
    if (written_rows, written_sha) != (rows, digest.hexdigest()):
        raise ArchiveError(
            f"The file read back has {written_rows} rows (sha256 {written_sha}), the partition {rows} "
            f"(sha256 {digest.hexdigest()}): nothing was dropped."
        )
    partial.rename(path)
    archive = EventArchive(month, name, rows, written_sha, _file_sha256(path), path, manifest)
    with manifest_partial.open("w") as out:
        out.write(json.dumps(_manifest(archive), indent=2) + "\n")
        out.flush()
        os.fsync(out.fileno())
    _fsync_directory(path.parent)
    return archive


def _fsync_directory(directory: Path) -> None:
    """A rename is on disk only once its directory is."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # the error being reported says more than this one


def _manifest(archive: EventArchive) -> dict:
    return {
        "month": f"{archive.month:%Y-%m}",
        "partition": archive.partition,
        "format": ARCHIVE_FORMAT,
        "rows": archive.rows,
        "csv_sha256": archive.csv_sha256,
        "file_sha256": archive.file_sha256,
        "file": archive.path.name,
        "archived_at": timezone.now().isoformat(),
    }


def event_partition_restore(*, path: Path) -> EventArchive:
    """Load an archived month back into the event store (for an investigation): the file must match its
    manifest (file checksum first, then rows and CSV checksum as loaded) and the month must have no
    partition now. Raises ArchiveError; nothing is loaded unless everything matches."""
    manifest_path = path.with_name(path.name.removesuffix(f".{ARCHIVE_FORMAT}") + ".json")
    if not path.is_file() or not manifest_path.is_file():
        raise ArchiveError(f"{path} and its manifest {manifest_path.name} must both exist.")
    try:
        manifest = json.loads(manifest_path.read_text())
        month = dt.date.fromisoformat(manifest["month"] + "-01")
        rows, csv_sha, file_sha = int(manifest["rows"]), str(manifest["csv_sha256"]), str(manifest["file_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{manifest_path.name} is not an archive manifest ({exc}).") from exc
    try:
        actual_sha = _file_sha256(path)
    except OSError as exc:
        raise ArchiveError(f"{path.name} could not be read ({exc}).") from exc
    if actual_sha != file_sha:
        raise ArchiveError(f"{path.name} does not match the checksum in its manifest: it changed or is damaged.")
    name = partition_name(month)
    if name in monthly_partitions():
        raise ArchiveError(f"{month:%Y-%m} has a partition already: restore it into an empty month only.")
    digest = hashlib.sha256()

    def blocks():
        with gzip.open(path, "rb") as raw:
            while block := raw.read(READ_BLOCK):
                digest.update(block)
                yield block

    with transaction.atomic():
        partition_ensure(month)
        try:
            loaded = events_import(name, blocks())
        except (OSError, EOFError, DatabaseError, psycopg.Error) as exc:
            raise ArchiveError(f"{path.name} could not be loaded ({str(exc)[:300]}): rolled back.") from exc
        if (loaded, digest.hexdigest()) != (rows, csv_sha):
            raise ArchiveError(f"Loaded {loaded} rows of {rows} expected, or the CSV checksum differs: rolled back.")
    return EventArchive(month, name, rows, csv_sha, file_sha, path, manifest_path)
