"""Reads for runbooks: visibility (RBAC), hybrid search with a calibrated confidence, strategy.

Every caller that shows runbooks to a user goes through ``visible_runbooks(user)``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from pgvector.django import CosineDistance

from runbooks.embeddings import EmbeddingError, get_embedder
from runbooks.models import ExecutionStatus, Runbook, RunbookExecution

logger = logging.getLogger(__name__)

STRATEGIES = ("no_solutions", "single_solution", "primary_plus_one", "multiple_options", "experimental_options")


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


@dataclass
class SearchResult:
    runbook: Runbook
    rank: int
    confidence: float
    components: dict
    success_rate: float | None
    success_samples: int
    recommended: bool = False


@dataclass
class SearchOutcome:
    query: str
    results: list[SearchResult]
    strategy: str
    threshold: float
    truncated: bool = False
    degraded: bool = False
    degraded_reason: str = ""
    timings_ms: dict = field(default_factory=dict)

    @property
    def recommended(self) -> list[SearchResult]:
        return [result for result in self.results if result.recommended]


def visible_runbooks(user) -> QuerySet[Runbook]:
    """Enabled runbooks ``user`` may see: unrestricted ones, or restricted to one of their groups."""
    queryset = Runbook.objects.filter(enabled=True)
    if user is None or not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    restricted = Runbook.allowed_groups.through.objects.filter(runbook_id=OuterRef("pk"))
    allowed = restricted.filter(group_id__in=user.groups.values("pk"))
    return queryset.filter(~Exists(restricted) | Exists(allowed))


def operator_reader():
    """An unsaved superuser for operator tools (management commands) that search every enabled runbook."""
    from django.contrib.auth import get_user_model

    return get_user_model()(username="(operator)", is_superuser=True, is_staff=True)


def runbook_success_stats(runbook_ids) -> dict:
    """{runbook_id: (succeeded, finished)} over finished executions."""
    rows = (
        RunbookExecution.objects.filter(
            runbook_id__in=runbook_ids, status__in=[ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED]
        )
        .values("runbook_id")
        .annotate(
            succeeded=Count("pk", filter=Q(status=ExecutionStatus.SUCCEEDED)),
            finished=Count("pk"),
        )
    )
    return {row["runbook_id"]: (row["succeeded"], row["finished"]) for row in rows}


def smoothed_success(succeeded: int, finished: int, prior: float = 2.0) -> float:
    """Beta(prior, prior) smoothing: 0.5 (neutral) with no data, the observed rate as data grows."""
    return (succeeded + prior) / (finished + 2 * prior)


_WORD = re.compile(r"[^\W_]+(?:[-.][^\W_]+)*", re.UNICODE)


def _keyword_query(text: str) -> SearchQuery | None:
    """An OR of the query's words: alert text is long and no runbook contains every word.

    Words are extracted by a regex and passed as plain terms, so tsquery operators, quotes,
    backslashes or SQL in the input are only ever text.
    """
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))[:64]
    if not words:
        return None
    query = None
    for word in words:
        term = SearchQuery(word, search_type="plain", config="english")
        query = term if query is None else query | term
    return query


def presentation_strategy(confidences: list[float], config: SearchConfig) -> str:
    """Pure function of the recommended confidences (highest first). Rules: docs/retrieval.md."""
    if not confidences:
        return "no_solutions"
    if confidences[0] < config.threshold + config.experimental_margin:
        return "experimental_options"
    if len(confidences) == 1:
        return "single_solution"
    if confidences[0] - confidences[1] >= config.primary_gap:
        return "primary_plus_one"
    return "multiple_options"


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_TOKEN = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be been by for from has have in is it of on or that the this to too with".split()
)
_SUFFIXES = ("ing", "ed", "es", "s", "ure", "ion")


def _stem(word: str) -> str:
    """A deliberately light suffix strip: 'failed', 'failure', 'failing' -> 'fail'."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def lexical_terms(text: str) -> set[str]:
    """Stemmed content words; CamelCase identifiers are split first ('KubePodCrashLooping')."""
    words = _TOKEN.findall(_CAMEL.sub(" ", text).lower())
    return {_stem(word) for word in words if word not in _STOPWORDS}


def title_coverage(title: str, query_terms: set[str]) -> float:
    """Share of the title's words found in the query: alert titles name the alert's symptoms."""
    terms = lexical_terms(title)
    return len(terms & query_terms) / len(terms) if terms else 0.0


# Ranking and confidence. Fitted by benchmarks/fit_confidence.py on data/eval/alert_queries_dev.jsonl
# (5-fold cross-validation for the choice, final fit on the whole dev split); see docs/retrieval.md.
RANK_WEIGHTS = {"semantic": 1.0, "keyword": 0.1, "title": 0.4}
CALIBRATION = {"intercept": -5.402, "score": 6.361, "gap": 16.613}
# Not fitted (the eval data has no executions): priors added on the logit scale, neutral without data.
SUCCESS_LOGIT_WEIGHT = 2.0  # smoothed success rate 1.0 -> +1.0, 0.0 -> -1.0, no data (0.5) -> 0
AUTOMATION_LOGIT_BONUS = 0.2


def rank_score(*, semantic: float, keyword: float, title: float) -> float:
    return RANK_WEIGHTS["semantic"] * semantic + RANK_WEIGHTS["keyword"] * keyword + RANK_WEIGHTS["title"] * title


def confidence_from(*, score: float, top_score: float, success: float, automated: bool) -> float:
    """Calibrated P(right runbook) from the fused score and its distance to the best one, then priors."""
    logit = (
        CALIBRATION["intercept"]
        + CALIBRATION["score"] * score
        + CALIBRATION["gap"] * (score - top_score)
        + SUCCESS_LOGIT_WEIGHT * (success - 0.5)
        + (AUTOMATION_LOGIT_BONUS if automated else 0.0)
    )
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))


@dataclass
class Candidate:
    pk: object
    semantic: float
    keyword: float
    title: float

    @property
    def score(self) -> float:
        return rank_score(semantic=self.semantic, keyword=self.keyword, title=self.title)


def runbook_candidates(*, text: str, base: QuerySet, config: SearchConfig, timings: dict) -> tuple[dict, list]:
    """({pk: Runbook}, [Candidate]) from the vector (HNSW) and full-text legs; raises nothing on odd text.

    The embedding failing degrades to keyword-only search (the reason is in ``timings['degraded']``).
    """
    semantic: dict = {}
    started = time.perf_counter()
    try:
        vector = get_embedder().embed_query(text)
        timings["embed_ms"] = round((time.perf_counter() - started) * 1000, 2)
        started = time.perf_counter()
        rows = (
            base.filter(embedding__isnull=False)
            .annotate(distance=CosineDistance("embedding", vector))
            .order_by("distance")
            .values_list("pk", "distance")[: config.candidates]
        )
        semantic = {pk: 1.0 - float(distance) for pk, distance in rows}
        timings["vector_ms"] = round((time.perf_counter() - started) * 1000, 2)
    except EmbeddingError as exc:
        timings["degraded"] = f"semantic search unavailable: {exc}"
        logger.warning("keyword-only search: %s", exc)

    started = time.perf_counter()
    keyword: dict = {}
    ts_query = _keyword_query(text)
    if ts_query is not None:
        rows = (
            base.filter(search_vector=ts_query)
            .annotate(score=SearchRank("search_vector", ts_query, normalization=32))
            .order_by("-score")
            .values_list("pk", "score")[: config.candidates]
        )
        keyword = {pk: float(score) for pk, score in rows}
    timings["keyword_ms"] = round((time.perf_counter() - started) * 1000, 2)

    started = time.perf_counter()
    ids = list(dict.fromkeys([*semantic, *keyword]))
    runbooks = {runbook.pk: runbook for runbook in base.filter(pk__in=ids).defer("embedding", "search_vector")}
    top_keyword = max(keyword.values(), default=0.0) or 1.0
    query_terms = lexical_terms(text)
    candidates = [
        Candidate(
            pk=pk,
            semantic=semantic.get(pk, 0.0),
            keyword=keyword.get(pk, 0.0) / top_keyword,
            title=title_coverage(runbooks[pk].name, query_terms),
        )
        for pk in ids
        if pk in runbooks
    ]
    timings["fetch_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return runbooks, candidates


def runbook_search(*, query: str, user, limit: int = 10, config: SearchConfig | None = None) -> SearchOutcome:
    config = config or SearchConfig.from_settings()
    text = (query or "").strip()
    if not text:
        raise InvalidQuery("Describe the problem: the query is empty.")
    truncated = len(text) > config.max_query_chars
    text = text[: config.max_query_chars]
    timings: dict = {}
    base = visible_runbooks(user)

    runbooks, candidates = runbook_candidates(text=text, base=base, config=config, timings=timings)
    started = time.perf_counter()
    stats = runbook_success_stats([candidate.pk for candidate in candidates])
    top_score = max((candidate.score for candidate in candidates), default=0.0)
    results: list[SearchResult] = []
    for candidate in candidates:
        runbook = runbooks[candidate.pk]
        succeeded, finished = stats.get(candidate.pk, (0, 0))
        success = smoothed_success(succeeded, finished)
        confidence = confidence_from(
            score=candidate.score, top_score=top_score, success=success, automated=runbook.is_automated
        )
        results.append(
            SearchResult(
                runbook=runbook,
                rank=0,
                confidence=round(confidence, 4),
                components={
                    "semantic": round(candidate.semantic, 4),
                    "keyword": round(candidate.keyword, 4),
                    "title": round(candidate.title, 4),
                    "score": round(candidate.score, 4),
                    "success": round(success, 4),
                    "automation": 1.0 if runbook.is_automated else 0.0,
                },
                success_rate=(succeeded / finished) if finished else None,
                success_samples=finished,
            )
        )
    results.sort(key=lambda result: (-result.confidence, result.runbook.slug))
    results = results[:limit]
    for position, result in enumerate(results, start=1):
        result.rank = position
        result.recommended = position <= config.max_recommended and result.confidence >= config.threshold
    recommended = [result.confidence for result in results if result.recommended]
    degraded_reason = timings.pop("degraded", "")
    timings["score_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return SearchOutcome(
        query=text,
        results=results,
        strategy=presentation_strategy(recommended, config),
        threshold=config.threshold,
        truncated=truncated,
        degraded=bool(degraded_reason),
        degraded_reason=degraded_reason,
        timings_ms=timings,
    )
