"""Hybrid runbook search: candidates from the vector and title legs, their features, calibrated ranking.

``runbook_search`` is the one entry point (docs/retrieval.md). Learned click feedback lives above this
layer (analytics), so a caller passes its reader in as ``feedback_scores``.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from pgvector import Vector

from runbooks.calibration import confidence_from, presentation_strategy, rank_score
from runbooks.embeddings import EmbeddingError, get_embedder
from runbooks.lexical import (
    candidate_bm25,
    document_terms,
    lexical_terms,
    names_runbook,
    query_coverage,
    query_identifiers,
    query_words,
    title_coverage,
    title_exact,
)
from runbooks.models import ExecutionStatus, Runbook, RunbookStatus
from runbooks.selectors import operator_reader, smoothed_success, visible_runbooks
from runbooks.sql import candidate_rows, hnsw_scan_set_local, queryset_condition

logger = logging.getLogger(__name__)

# HNSW settings for the vector leg, measured by benchmarks/hnsw_tuning.py (docs/operations.md, "pgvector
# index tuning"). pgvector's default ef_search (40) gives recall@30 0.93 with every runbook visible, and
# when visibility leaves 10 % of the rows the index scan stops after ef_search tuples and the filter runs
# afterwards: ~4 of 30 candidates. An iterative scan keeps going until LIMIT rows pass the filter.
HNSW_EF_SEARCH = 80
HNSW_ITERATIVE_SCAN = "relaxed_order"
# The executions that count for a runbook's success rate (runbooks.selectors.runbook_success_stats).
SUCCESS_STATUSES = (ExecutionStatus.SUCCEEDED.value, ExecutionStatus.FAILED.value)


class InvalidQuery(ValueError):
    """The query cannot be searched (empty after trimming); the message is for the user."""


@dataclass(frozen=True)
class SearchConfig:
    threshold: float = 0.5
    max_recommended: int = 3
    candidates: int = 30
    # top confidence below threshold + experimental_margin -> "experimental_options"
    experimental_margin: float = 0.1
    # top minus second >= primary_gap -> "primary_plus_one"
    primary_gap: float = 0.15
    max_query_chars: int = 4000

    @classmethod
    def from_settings(cls, **overrides) -> SearchConfig:
        base = cls(
            threshold=settings.AIHELPER_CONFIDENCE_THRESHOLD,
            max_recommended=settings.AIHELPER_MAX_RECOMMENDED,
            max_query_chars=settings.AIHELPER_MAX_QUERY_CHARS,
        )
        return replace(base, **overrides)


@dataclass(frozen=True)
class SearchResult:
    runbook: Runbook
    rank: int
    confidence: float
    components: dict[str, float]
    success_rate: float | None
    success_samples: int
    recommended: bool = False


@dataclass(frozen=True)
class SearchOutcome:
    query: str
    results: tuple[SearchResult, ...]
    strategy: str
    threshold: float
    truncated: bool = False
    degraded: bool = False
    degraded_reason: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def recommended(self) -> list[SearchResult]:
        return [result for result in self.results if result.recommended]


@dataclass(frozen=True)
class Candidate:
    pk: uuid.UUID
    semantic: float
    keyword: float
    title: float
    coverage: float = 0.0
    named: float = 0.0  # 1.0: the query names this runbook's alert (lexical.names_runbook)
    title_exact: float = 0.0
    bm25: float = 0.0  # BM25 with word weights from the candidates themselves (lexical.candidate_bm25)

    @property
    def score(self) -> float:
        return rank_score(self)


@dataclass(frozen=True)
class Candidates:
    """What candidate generation found: the rows, their features and, for keyword-only search, why."""

    runbooks: Mapping[uuid.UUID, Runbook]  # {pk: Runbook} for every candidate
    candidates: tuple[Candidate, ...]
    degraded_reason: str = ""  # non-empty: the embedding failed and only the keyword legs ran
    timings_ms: Mapping[str, float] = field(default_factory=dict)


def runbook_candidates(
    *, text: str, base: QuerySet | None = None, config: SearchConfig, extra_ids: Sequence[uuid.UUID] = (),
    condition: tuple[str, list] | None = None,
) -> Candidates:
    """Candidates from the vector (HNSW) and title full-text legs; raises nothing on odd text.

    Candidates: the top ``config.candidates`` by cosine distance (HNSW) and the top ``config.candidates``
    by ts_rank on the small title/tags vector, matched with the query's selective words only. The
    keyword feature (ts_rank on the full document vector, all words) is then computed for that union
    alone, so no query ranks thousands of rows. The embedding failing degrades to keyword-only search
    (``degraded_reason`` says why); the full document vector then also finds candidates. ``extra_ids``
    (runbooks a conversation already has in play) are candidates too when ``base`` lets the user see
    them, with their semantic similarity computed directly. ``condition``: ``base`` already compiled
    (runbooks.sql.queryset_condition), instead of ``base``.
    """
    timings: dict[str, float] = {}
    degraded_reason = ""
    vector = None
    started = time.perf_counter()
    try:
        vector = Vector(get_embedder().embed_query(text)).to_text()
        timings["embed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    except EmbeddingError as exc:
        degraded_reason = f"semantic search unavailable: {exc}"
        logger.warning("keyword-only search: %s", exc)

    # Every leg, the rows and their keyword rank in one statement (runbooks.sql.candidate_rows), which also picks
    # the words worth matching (from the planner's statistics). Without the vector leg (the embedding failed) the
    # full document vector also finds candidates.
    started = time.perf_counter()
    words = query_words(text)
    document_words = words if vector is None else []
    with transaction.atomic(savepoint=False):
        if vector is not None:
            hnsw_scan_set_local(ef_search=max(HNSW_EF_SEARCH, config.candidates), iterative_scan=HNSW_ITERATIVE_SCAN)
        condition = condition or queryset_condition(base)
        rows = candidate_rows(
            condition=condition, vector=vector, title_words=words, document_words=document_words,
            all_words=words, limit=config.candidates, extra_ids=list(extra_ids), success_statuses=SUCCESS_STATUSES,
        )
    if vector is not None and not any(row.leg_distance is not None for row in rows):
        # The vector leg found nothing (no runbook the user may see is embedded yet, or the HNSW scan stopped early):
        # the document leg finds candidates, as before the single statement.
        rows = candidate_rows(
            condition=condition, vector=vector, vector_leg=False, title_words=words, document_words=words,
            all_words=words, limit=config.candidates, extra_ids=list(extra_ids), success_statuses=SUCCESS_STATUSES,
        )
    timings["candidates_ms"] = round((time.perf_counter() - started) * 1000, 2)

    started = time.perf_counter()
    runbooks = {runbook.pk: runbook for runbook in rows}
    # The order the legs found them in (vector by distance, then title, then document matches, then the runbooks
    # in play), as before; ranking does not depend on it.
    by_distance = sorted((r for r in rows if r.leg_distance is not None), key=lambda r: (r.leg_distance, r.pk))
    by_title = sorted((r for r in rows if r.title_rank is not None), key=lambda r: (-r.title_rank, r.pk))
    by_document = sorted((r for r in rows if r.document_rank is not None), key=lambda r: (-r.document_rank, r.pk))
    semantic = {r.pk: 1.0 - float(r.leg_distance) for r in by_distance}
    for pk in extra_ids:
        runbook = runbooks.get(pk)
        if pk not in semantic and runbook is not None and runbook.direct_distance is not None:
            semantic[pk] = 1.0 - float(runbook.direct_distance)
    ids = list(dict.fromkeys([*(r.pk for r in by_distance), *(r.pk for r in by_title),
                              *(r.pk for r in by_document), *extra_ids]))
    keyword = {pk: float(getattr(runbook, "keyword_rank", 0.0) or 0.0) for pk, runbook in runbooks.items()}
    top_keyword = max(keyword.values(), default=0.0) or 1.0
    query_terms = lexical_terms(text)
    documents = {pk: document_terms(runbook) for pk, runbook in runbooks.items()}
    matched = {pk: query_terms.intersection(document) for pk, document in documents.items()}
    known = len(set().union(*matched.values()))
    identifiers = query_identifiers(text)
    bm25 = dict(zip(documents, candidate_bm25(query_terms, list(documents.values())), strict=True))
    candidates = tuple(
        Candidate(
            pk=pk,
            semantic=semantic.get(pk, 0.0),
            keyword=keyword[pk] / top_keyword,
            title=title_coverage(runbooks[pk].name, query_terms),
            coverage=query_coverage(len(matched[pk]), known),
            named=float(names_runbook(identifiers, name=runbooks[pk].name, slug=runbooks[pk].slug)),
            title_exact=title_exact(runbooks[pk].name, query_terms),
            bm25=bm25[pk],
        )
        for pk in ids
        if pk in runbooks
    )
    timings["features_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return Candidates(runbooks=runbooks, candidates=candidates, degraded_reason=degraded_reason, timings_ms=timings)


# {runbook id: learned feedback in [-1, 1]} for the ids asked; analytics learns it from clicks. A higher
# layer passes its reader in (the search cannot import analytics, which sits above runbooks).
FeedbackScores = Callable[[Sequence[uuid.UUID]], Mapping[uuid.UUID, float]]


@dataclass(frozen=True)
class _Scored:
    """One candidate with what ranking needs, before its rank is known."""

    candidate: Candidate
    runbook: Runbook
    confidence: float
    success: float
    feedback: float
    succeeded: int
    finished: int

    @property
    def order_key(self) -> tuple[float, float, str]:
        # Exact confidence, then the score (far-behind candidates all round to 0.0), then the slug.
        return (-self.confidence, -self.candidate.score, self.runbook.slug)


def _result(scored: _Scored, *, rank: int, config: SearchConfig) -> SearchResult:
    candidate, runbook = scored.candidate, scored.runbook
    confidence = round(scored.confidence, 4)  # for display; ordering uses the exact value
    return SearchResult(
        runbook=runbook,
        rank=rank,
        confidence=confidence,
        components={
            "semantic": round(candidate.semantic, 4),
            "keyword": round(candidate.keyword, 4),
            "title": round(candidate.title, 4),
            "coverage": round(candidate.coverage, 4),
            "title_exact": round(candidate.title_exact, 4),
            "named": candidate.named,
            "bm25": round(candidate.bm25, 4),
            "score": round(candidate.score, 4),
            "success": round(scored.success, 4),
            "automation": 1.0 if runbook.is_automated else 0.0,
            "feedback": round(scored.feedback, 4),
        },
        success_rate=(scored.succeeded / scored.finished) if scored.finished else None,
        success_samples=scored.finished,
        recommended=rank <= config.max_recommended and confidence >= config.threshold,
    )


def searchable_runbooks(user) -> QuerySet[Runbook]:
    """What search may find for ``user``: visible to them (RBAC, enabled) and ``active`` — drafts and
    retired runbooks are never searched, recommended or counted as catalogue (docs/authoring.md)."""
    return visible_runbooks(user).filter(status=RunbookStatus.ACTIVE)


def searchable_condition(user) -> tuple[str, list]:
    """``searchable_runbooks(user)`` compiled to its WHERE condition (runbooks.sql.queryset_condition), once per
    user and process: building and compiling the queryset was ~2.7 ms of every search. The compiled text depends
    only on who the user is — anonymous, a superuser, or which other user: their groups are read by the
    statement when it runs — so a cached condition never misses a change of groups or of the runbooks."""
    if user is None or not user.is_authenticated:
        where, params = _compiled_condition("anonymous", None)
    elif user.is_superuser:
        where, params = _compiled_condition("superuser", None)
    else:
        where, params = _compiled_condition("user", user.pk)
    return where, list(params)


@functools.lru_cache(maxsize=4096)
def _compiled_condition(kind: str, pk) -> tuple[str, tuple]:
    """The condition for a reader of this kind: none (anonymous), the operator (a superuser), or the user ``pk``
    (only their pk is in the statement)."""
    if kind == "anonymous":
        reader = None
    elif kind == "superuser":
        reader = operator_reader()
    else:
        reader = get_user_model()(pk=pk)
    where, params = queryset_condition(searchable_runbooks(reader))
    return where, tuple(params)


def runbook_search(
    *,
    query: str,
    user,
    limit: int = 10,
    config: SearchConfig | None = None,
    feedback_scores: FeedbackScores | None = None,
    extra_ids: Sequence[uuid.UUID] = (),
) -> SearchOutcome:
    """Hybrid search over the runbooks ``user`` may see. Without ``feedback_scores`` no learned
    feedback is used (its logit term is 0, as for a runbook nothing was learned about). Each of
    ``extra_ids`` the user may see is scored against this query and kept in the results even beyond
    ``limit`` (a conversation's runbooks in play); one the user may not see is never fetched."""
    config = config or SearchConfig.from_settings()
    text = (query or "").strip()
    if not text:
        raise InvalidQuery("Describe the problem: the query is empty.")
    truncated = len(text) > config.max_query_chars
    text = text[: config.max_query_chars]

    found = runbook_candidates(text=text, condition=searchable_condition(user), config=config, extra_ids=extra_ids)
    candidates = found.candidates
    started = time.perf_counter()
    # Finished executions came with the candidate rows (runbooks.sql.candidate_rows, as runbook_success_stats counts).
    stats = {pk: (runbook.succeeded_runs or 0, runbook.finished_runs or 0) for pk, runbook in found.runbooks.items()}
    feedback = feedback_scores([candidate.pk for candidate in candidates]) if feedback_scores else {}
    top = max(candidates, key=lambda candidate: candidate.score, default=None)
    top_score, top_coverage = (top.score, top.coverage) if top else (0.0, 0.0)
    if found.degraded_reason:
        # The calibration was fitted with the semantic similarity present; without it the coverage
        # evidence is not used: keyword matches get low confidences (listed, and at the default
        # threshold not recommended; a deployment that lowers the threshold still gets them).
        top_coverage = 0.0
    scored: list[_Scored] = []
    for candidate in candidates:
        runbook = found.runbooks[candidate.pk]
        succeeded, finished = stats.get(candidate.pk, (0, 0))
        success = smoothed_success(succeeded, finished)
        learned = feedback.get(candidate.pk, 0.0)
        confidence = confidence_from(
            score=candidate.score,
            top_score=top_score,
            success=success,
            automated=runbook.is_automated,
            top_coverage=top_coverage,
            feedback=learned,
        )
        scored.append(
            _Scored(
                candidate=candidate,
                runbook=runbook,
                confidence=confidence,
                success=success,
                feedback=learned,
                succeeded=succeeded,
                finished=finished,
            )
        )
    ranked = sorted(scored, key=lambda item: item.order_key)
    ranked = ranked[:limit] + [item for item in ranked[limit:] if item.candidate.pk in set(extra_ids)]
    results = tuple(_result(item, rank=position, config=config) for position, item in enumerate(ranked, start=1))
    recommended = [result.confidence for result in results if result.recommended]
    timings = {**found.timings_ms, "score_ms": round((time.perf_counter() - started) * 1000, 2)}
    return SearchOutcome(
        query=text,
        results=results,
        strategy=presentation_strategy(recommended, config),
        threshold=config.threshold,
        truncated=truncated,
        degraded=bool(found.degraded_reason),
        degraded_reason=found.degraded_reason,
        timings_ms=timings,
    )
