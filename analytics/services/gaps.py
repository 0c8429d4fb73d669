"""Knowledge gaps: the questions and alerts that went wrong, grouped by meaning, with the runbooks nearest
to each group (only those the reader may see) and whether one already covers it (docs/analytics.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction
from django.utils import timezone
from pgvector.django import CosineDistance

from aihelper.core.redaction import RETENTION_MARKER
from analytics.grouping import DEFAULT_MIN_SIZE, DEFAULT_THRESHOLD, group_vectors
from analytics.services.rollups import visible_runbook_ids_for
from analytics.sql.gaps import GapCandidate, gap_candidates, gap_candidates_recent, question_vectors_insert
from runbooks.embeddings import Embedder
from runbooks.models import RunbookOrigin, RunbookStatus
from runbooks.search import HNSW_EF_SEARCH, HNSW_ITERATIVE_SCAN
from runbooks.selectors import visible_runbooks
from runbooks.sql import hnsw_scan_set_local

# A group is covered when an active runbook the reader may see is at least this similar (cosine) to its
# centroid: all-MiniLM-L6-v2 puts a question and the runbook written for it at 0.5-0.8, unrelated at < 0.3.
COVERED_SIMILARITY = 0.5
NEAREST_RUNBOOKS = 3
EXAMPLES = 3
SAMPLE_TEXTS = 12  # what a draft runbook is written from
MAX_GROUPS = 30
# Grouping holds every vector in memory (~1.5 KiB each) and compares them all: a request groups at most the
# most recent this many questions, and the page says so when a range has more.
MAX_CANDIDATES = 20_000
TREND_PERIODS = 8
EMBED_BATCH = 128
GAP_SOURCE_PREFIX = "gap:"
REASONS = ("no_recommendation", "not_helpful", "does_not_fit", "not_clicked", "failed")
REASON_LABELS = {
    "no_recommendation": "got no recommendation",
    "not_helpful": "marked not helpful",
    "does_not_fit": "had a runbook marked does not fit",
    "not_clicked": "had recommendations nobody clicked",
    "failed": "ended in a failed run",
}


@dataclass(frozen=True)
class NearRunbook:
    runbook_id: uuid.UUID
    slug: str
    name: str
    score: float  # cosine similarity to the group's centroid


@dataclass(frozen=True)
class GapGroup:
    key: uuid.UUID  # the audit log most central to the group: what a draft runbook links to
    size: int
    reasons: dict[str, int]
    failed_share: float
    trend: list[int]  # questions per period of the range, oldest first
    growing: bool
    examples: list[str]  # the first EXAMPLES of texts
    texts: list[str]  # up to SAMPLE_TEXTS distinct texts, most central first
    nearest: list[NearRunbook]
    covered: bool
    drafts: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (runbook id, name) drafted from it
    member_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class GapReport:
    start: dt.datetime
    end: dt.datetime
    candidates: int
    not_embedded: int  # candidates without a vector yet (not grouped)
    ungrouped: int  # embedded candidates in no group (one-off questions)
    groups: list[GapGroup]
    more_groups: int  # groups beyond MAX_GROUPS, not shown
    grouped_from: int = 0  # when not 0: only this many most recent candidates were grouped (MAX_CANDIDATES)


def gap_vectors_refresh(
    *, embedder: Embedder, start: dt.datetime, end: dt.datetime, progress: Callable[[str], object] | None = None
) -> int:
    """Embed the gap candidates of [start, end) that have no vector yet; returns how many were embedded."""
    say = progress or (lambda message: None)
    missing = gap_candidates(start=start, end=end, now=timezone.now(), blanked=RETENTION_MARKER, missing_only=True)
    for offset in range(0, len(missing), EMBED_BATCH):
        batch = missing[offset : offset + EMBED_BATCH]
        vectors = embedder.embed_documents([candidate.query for candidate in batch])
        rows = [(c.audit_log_id, c.created_at, v) for c, v in zip(batch, vectors, strict=True)]
        question_vectors_insert(rows, model=embedder.model_name)
        say(f"embedded {offset + len(batch)} of {len(missing)} questions")
    return len(missing)


def _trend(created: list[dt.datetime], start: dt.datetime, end: dt.datetime) -> list[int]:
    span = (end - start) / TREND_PERIODS
    counts = [0] * TREND_PERIODS
    for at in created:
        counts[min(TREND_PERIODS - 1, int((at - start) / span))] += 1
    return counts


def _growing(trend: list[int]) -> bool:
    half = len(trend) // 2
    earlier, later = sum(trend[:half]), sum(trend[half:])
    return later >= 3 and later > 1.25 * earlier


def _nearest(user, centroid: np.ndarray) -> list[NearRunbook]:
    # As in search: the HNSW scan keeps going until LIMIT rows pass the visibility and status filters (and
    # skips dead index entries); a plain scan stops after ef_search tuples and can return none.
    with transaction.atomic(savepoint=False):
        hnsw_scan_set_local(ef_search=HNSW_EF_SEARCH, iterative_scan=HNSW_ITERATIVE_SCAN)
        rows = list(
            visible_runbooks(user)
            .filter(status=RunbookStatus.ACTIVE, embedding__isnull=False)
            .annotate(distance=CosineDistance("embedding", centroid.tolist()))
            .order_by("distance", "slug")
            .values_list("pk", "slug", "name", "distance")[:NEAREST_RUNBOOKS]
        )
    return [NearRunbook(pk, slug, name, round(1 - distance, 4)) for pk, slug, name, distance in rows]


def _drafts_by_audit_log(user) -> dict[str, list[tuple[uuid.UUID, str]]]:
    """The drafts written from gap groups that ``user`` may see (a restricted draft's name is not shown to a
    reader outside its groups), by the audit log they were drafted from."""
    drafts: dict[str, list[tuple[uuid.UUID, str]]] = {}
    for pk, name, source in visible_runbooks(user).filter(origin=RunbookOrigin.GAP_REPORT).values_list(
        "pk", "name", "origin_source"
    ):
        drafts.setdefault(source.removeprefix(GAP_SOURCE_PREFIX), []).append((pk, name))
    return drafts


def gap_source(key: uuid.UUID) -> str:
    """``Runbook.origin_source`` of a runbook drafted from the group whose key is ``key``."""
    return f"{GAP_SOURCE_PREFIX}{key}"


def _group(user, group, candidates: list[GapCandidate], start, end, drafts) -> GapGroup:
    members = [candidates[i] for i in group.members]
    reasons = {reason: sum(1 for m in members if getattr(m, reason)) for reason in REASONS}
    trend = _trend([m.created_at for m in members], start, end)
    texts: list[str] = []
    for member in members:  # most central first; distinct texts
        if member.query not in texts:
            texts.append(member.query)
        if len(texts) == SAMPLE_TEXTS:
            break
    nearest = _nearest(user, group.centroid)
    ids = tuple(m.audit_log_id for m in members)
    return GapGroup(
        key=members[0].audit_log_id,
        size=len(members),
        reasons=reasons,
        failed_share=reasons["failed"] / len(members),
        trend=trend,
        growing=_growing(trend),
        examples=texts[:EXAMPLES],
        texts=texts,
        nearest=nearest,
        covered=bool(nearest) and nearest[0].score >= COVERED_SIMILARITY,
        drafts=[draft for member in ids for draft in drafts.get(str(member), [])],
        member_ids=ids,
    )


def gap_report(
    *,
    user,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    min_size: int = DEFAULT_MIN_SIZE,
    max_groups: int = MAX_GROUPS,
    max_candidates: int | None = None,
) -> GapReport:
    """The gap groups of questions created in [start, end) for ``user`` (staff; runbooks they may see):
    groups without a covering runbook first, then the largest and growing ones. Only the most recent
    ``max_candidates`` (MAX_CANDIDATES) questions are grouped."""
    limit = max_candidates or MAX_CANDIDATES
    recent = gap_candidates_recent(
        start=start,
        end=end,
        now=now or timezone.now(),
        blanked=RETENTION_MARKER,
        limit=limit,
        visible_runbook_ids=visible_runbook_ids_for(user),
    )
    embedded = [c for c in recent.candidates if c.vector is not None]
    groups = group_vectors(
        np.array([c.vector for c in embedded], dtype=np.float32), threshold=threshold, min_size=min_size
    )
    drafts = _drafts_by_audit_log(user)
    every = [_group(user, g, embedded, start, end, drafts) for g in groups]
    # Groups nobody covers first, then the largest, growing ones weighing half as much again.
    every.sort(key=lambda g: (g.covered, -g.size * (1.5 if g.growing else 1), str(g.key)))
    return GapReport(
        start=start,
        end=end,
        candidates=recent.total,
        not_embedded=recent.not_embedded,
        ungrouped=len(embedded) - sum(len(g.members) for g in groups),
        groups=every[:max_groups],
        more_groups=max(0, len(every) - max_groups),
        grouped_from=limit if recent.total > limit else 0,
    )
