"""Reads for runbooks: visibility (RBAC), hybrid search with a calibrated confidence, strategy.

Every caller that shows runbooks to a user goes through ``visible_runbooks(user)``.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVectorField
from django.db import connection, connections, transaction
from django.db.models import Count, Exists, Expression, F, OuterRef, Q, QuerySet
from pgvector.django import CosineDistance

from runbooks.embeddings import EmbeddingError, embedding_hash, get_embedder, runbook_document, step_text
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
    return get_user_model()(username="(operator)", is_superuser=True, is_staff=True)


def embedding_status(runbook: Runbook) -> str:
    """current / stale / missing, without loading the model (hash of text + model name)."""
    if runbook.embedding_hash == "" or runbook.embedding is None:
        return "missing"
    model_name = get_embedder().model_name
    if runbook.embedding_hash != embedding_hash(runbook_document(runbook), model_name):
        return "stale"
    return "current"


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
MAX_QUERY_WORDS = 64
# HNSW settings for the vector leg, measured by benchmarks/hnsw_tuning.py (docs/operations.md, "pgvector
# index tuning"). pgvector's default ef_search (40) gives recall@30 0.93 with every runbook visible, and
# when visibility leaves 10 % of the rows the index scan stops after ef_search tuples and the filter runs
# afterwards: ~4 of 30 candidates. An iterative scan keeps going until LIMIT rows pass the filter.
HNSW_EF_SEARCH = 80
HNSW_ITERATIVE_SCAN = "relaxed_order"


@functools.cache
def _pgvector_has_iterative_scan(alias: str) -> bool:
    """hnsw.iterative_scan exists from pgvector 0.8; older versions reserve the "hnsw." prefix and refuse
    an unknown setting once loaded, so it is only set where it exists (external DATABASE_URL servers)."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT string_to_array(extversion, '.')::int[] >= '{0,8}' FROM pg_extension WHERE extname = 'vector'"
        )
        row = cursor.fetchone()
    return bool(row and row[0])


# A query word whose lexemes all occur in more than this many runbooks (planner statistics) is not
# used to *find* keyword candidates: it matches a large share of a big corpus and ranking those
# matches is what made the full-text leg slow. It still counts in the keyword score of the
# candidates found. Below ~MAX_TERM_MATCHES runbooks nothing is ever dropped.
MAX_TERM_MATCHES = 300


def query_words(text: str) -> list[str]:
    """The query's distinct words, lower-cased, in order (at most MAX_QUERY_WORDS)."""
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))[:MAX_QUERY_WORDS]


def _keyword_query(words: list[str]) -> SearchQuery | None:
    """An OR of the words: alert text is long and no runbook contains every word.

    Words come from a regex and are passed as plain terms, so tsquery operators, quotes,
    backslashes or SQL in the input are only ever text.
    """
    query = None
    for word in words:
        term = SearchQuery(word, search_type="plain", config="english")
        query = term if query is None else query | term
    return query


# Catalog read, so it cannot be an ORM query: pg_stats keeps, per tsvector column, the most common
# lexemes and the share of rows holding each (refreshed by ANALYZE/autovacuum). A word is kept when
# at least one of its lexemes is not common; stop words (no lexeme) are dropped. Missing statistics
# (a fresh or tiny table) mean nothing is dropped. Constant SQL text; the words are bound parameters.
_SELECTIVE_WORDS_SQL = """
WITH common AS (
    SELECT element.lexeme
      FROM pg_stats AS stats
     CROSS JOIN LATERAL unnest(stats.most_common_elems::text::text[], stats.most_common_elem_freqs)
           AS element(lexeme, share)
     WHERE stats.schemaname = current_schema() AND stats.tablename = 'runbooks' AND stats.attname = %s
       AND element.lexeme IS NOT NULL
       AND element.share * (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'runbooks'::regclass) > %s
)
SELECT query.word
  FROM unnest(%s::text[]) WITH ORDINALITY AS query(word, position)
 WHERE EXISTS (
        SELECT 1 FROM unnest(tsvector_to_array(to_tsvector('english', query.word))) AS lexeme
         WHERE lexeme NOT IN (SELECT common.lexeme FROM common))
 ORDER BY query.position
"""


def selective_words(
    words: list[str], *, column: str = "search_title", max_matches: int = MAX_TERM_MATCHES
) -> list[str]:
    """The words worth matching on ``column`` (a tsvector column of runbooks): see _SELECTIVE_WORDS_SQL."""
    if not words:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_SELECTIVE_WORDS_SQL, [column, max_matches, words])
        return [row[0] for row in cursor.fetchall()]


class TitleVector(Expression):
    """runbooks.search_title: title (as written, CamelCase split, slug) at weight A and tags at B.

    Maintained by a trigger (migration 0004) with its own GIN index; not a model field, so it is
    read through this expression (always on the top-level runbooks table, which is all search uses).
    """

    output_field = SearchVectorField()

    def as_sql(self, compiler, connection):
        quote = connection.ops.quote_name
        return f"{quote(Runbook._meta.db_table)}.{quote('search_title')}", []


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


def _term_matches(term: str, query_terms: set[str]) -> bool:
    """Equal stems, or one a prefix (>= 3 letters) of the other: alert names abbreviate and the light
    stemmer leaves doubled consonants ('Errs' ~ 'errors', 'Overcommit' ~ 'overcommitted')."""
    if term in query_terms:
        return True
    return len(term) >= 3 and any(
        len(word) >= 3 and (word.startswith(term) or term.startswith(word)) for word in query_terms
    )


# Word sets of runbooks, per process: {(pk, hash of the text): tuple of interned words}. Keyed by the
# text itself (not updated_at, which a queryset .update() does not touch), bounded, oldest out first.
# Tuples of interned strings: ~1-2 kB per runbook, the words themselves shared between runbooks.
_DOCUMENT_TERMS: dict[tuple, tuple[str, ...]] = {}
_DOCUMENT_TERMS_MAX = 4096
_DOCUMENT_TERMS_LOCK = threading.Lock()


def document_terms(runbook: Runbook) -> tuple[str, ...]:
    """The stemmed words of a runbook's title, description, tags and steps (not the body)."""
    steps = runbook.steps if isinstance(runbook.steps, list) else []
    text = " ".join([runbook.name, runbook.description, " ".join(runbook.tags or []), *map(step_text, steps)])
    key = (runbook.pk, hash(text))
    terms = _DOCUMENT_TERMS.get(key)
    if terms is None:
        terms = tuple(sorted(sys.intern(term) for term in lexical_terms(text)))
        with _DOCUMENT_TERMS_LOCK:
            if len(_DOCUMENT_TERMS) >= _DOCUMENT_TERMS_MAX:
                _DOCUMENT_TERMS.pop(next(iter(_DOCUMENT_TERMS)), None)
            _DOCUMENT_TERMS[key] = terms
    return terms


# Coverage counts this many unmatched words before any query: a query with one or two known words
# ("error") cannot reach coverage 1.0 and claim that a runbook explains it.
COVERAGE_PRIOR_WORDS = 3


def query_coverage(matched: int, known: int) -> float:
    """Share of the query's *known* words (found in at least one candidate) that a runbook contains,
    shrunk by COVERAGE_PRIOR_WORDS.

    Alerts carry host names, paths, numbers and products nobody wrote a runbook for; those words are in
    no candidate and so do not count. What remains is what a runbook could explain, and the right one
    explains much of it: this separates "ranked first among weak matches" from "the answer".
    """
    return matched / (known + COVERAGE_PRIOR_WORDS) if known else 0.0


def title_coverage(title: str, query_terms: set[str]) -> float:
    """Share of the title's words found in the query: alert titles name the alert's symptoms."""
    terms = lexical_terms(title)
    return sum(_term_matches(term, query_terms) for term in terms) / len(terms) if terms else 0.0


# Ranking and confidence. Fitted by benchmarks/fit_confidence.py on data/eval/alert_queries_dev.jsonl
# (5-fold cross-validation for the choice, final fit on the whole dev split); see docs/retrieval.md.
# Two stages: (intercept, score, coverage) is a logistic regression of "the best candidate is the
# right runbook", one row per query; gap (score minus the best score, <= 0) is then fitted over all
# candidates with the first stage as offset. Same formula for every candidate; the best has gap 0.
# Coverage is the *best* candidate's query coverage, the same for every candidate of a query (how
# answerable the query is), so it never reorders candidates (the priors below can, between close ones).
# Refitted 2026-11-26 (query coverage added): cross-validated gold recommended 0.897 -> 0.982 (mean of
# 5 shuffles of 5 folds), negatives quiet 1.000 -> 1.000.
RANK_WEIGHTS = {"semantic": 1.0, "keyword": 0.2, "title": 0.4}
CALIBRATION = {"intercept": -7.207, "score": 6.882, "coverage": 4.725, "gap": 36.308}
# Not fitted (the eval data has no executions): priors added on the logit scale, neutral without data.
SUCCESS_LOGIT_WEIGHT = 2.0  # smoothed success rate 1.0 -> +1.0, 0.0 -> -1.0, no data (0.5) -> 0
AUTOMATION_LOGIT_BONUS = 0.2
# Learned click feedback (analytics.update_runbook_stats: position-debiased, in [-1, 1]) can move the
# logit by at most +-0.5: it nudges between close candidates, never overrides retrieval.
FEEDBACK_LOGIT_WEIGHT = 0.5


def rank_score(*, semantic: float, keyword: float, title: float) -> float:
    return RANK_WEIGHTS["semantic"] * semantic + RANK_WEIGHTS["keyword"] * keyword + RANK_WEIGHTS["title"] * title


def confidence_from(
    *,
    score: float,
    top_score: float,
    success: float,
    automated: bool,
    top_coverage: float = 0.0,
    feedback: float = 0.0,
) -> float:
    """Calibrated P(right runbook) from the fused score, its distance to the best one and how much
    of the query the best one explains (``top_coverage``), then the priors."""
    logit = (
        CALIBRATION["intercept"]
        + CALIBRATION["score"] * score
        + CALIBRATION["coverage"] * top_coverage
        + CALIBRATION["gap"] * (score - top_score)
        + SUCCESS_LOGIT_WEIGHT * (success - 0.5)
        + (AUTOMATION_LOGIT_BONUS if automated else 0.0)
        + FEEDBACK_LOGIT_WEIGHT * max(-1.0, min(1.0, feedback))
    )
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))


@dataclass
class Candidate:
    pk: object
    semantic: float
    keyword: float
    title: float
    coverage: float = 0.0

    @property
    def score(self) -> float:
        return rank_score(semantic=self.semantic, keyword=self.keyword, title=self.title)


def runbook_candidates(*, text: str, base: QuerySet, config: SearchConfig, timings: dict) -> tuple[dict, list]:
    """({pk: Runbook}, [Candidate]) from the vector (HNSW) and title full-text legs; raises nothing on odd text.

    Candidates: the top ``config.candidates`` by cosine distance (HNSW) and the top ``config.candidates``
    by ts_rank on the small title/tags vector, matched with the query's selective words only. The
    keyword feature (ts_rank on the full document vector, all words) is then computed for that union
    alone, so no query ranks thousands of rows. The embedding failing degrades to keyword-only search
    (the reason is in ``timings['degraded']``); the full document vector then also finds candidates.
    """
    semantic: dict = {}
    started = time.perf_counter()
    try:
        vector = get_embedder().embed_query(text)
        timings["embed_ms"] = round((time.perf_counter() - started) * 1000, 2)
        started = time.perf_counter()
        # set_config(..., true) is SET LOCAL with bound values: it ends with this transaction.
        # relaxed_order may return candidates slightly out of distance order; fusion re-sorts them.
        with transaction.atomic(savepoint=False), connection.cursor() as cursor:
            ef_search = str(max(HNSW_EF_SEARCH, config.candidates))
            if _pgvector_has_iterative_scan(connection.alias):
                cursor.execute(
                    "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', %s, true)",
                    [ef_search, HNSW_ITERATIVE_SCAN],
                )
            else:
                cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [ef_search])
            rows = list(
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
    words = query_words(text)
    found: list = []
    legs = [("search_title", TitleVector())] + ([] if semantic else [("search_vector", F("search_vector"))])
    for column, document in legs:
        match = _keyword_query(selective_words(words, column=column))
        if match is None:
            continue
        found += (
            base.alias(document=document)
            .filter(document=match)
            .annotate(match_rank=SearchRank(document, match, normalization=32))
            .order_by("-match_rank", "pk")
            .values_list("pk", flat=True)[: config.candidates]
        )
    timings["keyword_ms"] = round((time.perf_counter() - started) * 1000, 2)

    started = time.perf_counter()
    ids = list(dict.fromkeys([*semantic, *found]))
    everything = _keyword_query(words)
    rows = base.filter(pk__in=ids).defer("embedding", "search_vector", "body_markdown")
    if everything is not None:
        rows = rows.annotate(keyword_rank=SearchRank(F("search_vector"), everything, normalization=32))
    runbooks = {runbook.pk: runbook for runbook in rows}
    keyword = {pk: float(getattr(runbook, "keyword_rank", 0.0) or 0.0) for pk, runbook in runbooks.items()}
    top_keyword = max(keyword.values(), default=0.0) or 1.0
    query_terms = lexical_terms(text)
    matched = {pk: query_terms.intersection(document_terms(runbook)) for pk, runbook in runbooks.items()}
    known = len(set().union(*matched.values()))
    candidates = [
        Candidate(
            pk=pk,
            semantic=semantic.get(pk, 0.0),
            keyword=keyword[pk] / top_keyword,
            title=title_coverage(runbooks[pk].name, query_terms),
            coverage=query_coverage(len(matched[pk]), known),
        )
        for pk in ids
        if pk in runbooks
    ]
    timings["fetch_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return runbooks, candidates


# {runbook id: learned feedback in [-1, 1]} for the ids asked; analytics learns it from clicks. A higher
# layer passes its reader in (the search cannot import analytics, which sits above runbooks).
FeedbackScores = Callable[[list], Mapping]


def runbook_search(
    *,
    query: str,
    user,
    limit: int = 10,
    config: SearchConfig | None = None,
    feedback_scores: FeedbackScores | None = None,
) -> SearchOutcome:
    """Hybrid search over the runbooks ``user`` may see. Without ``feedback_scores`` no learned
    feedback is used (its logit term is 0, as for a runbook nothing was learned about)."""
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
    feedback = feedback_scores([candidate.pk for candidate in candidates]) if feedback_scores else {}
    top = max(candidates, key=lambda candidate: candidate.score, default=None)
    top_score, top_coverage = (top.score, top.coverage) if top else (0.0, 0.0)
    if "degraded" in timings:
        # The calibration was fitted with the semantic similarity present; without it the coverage
        # evidence is not used: keyword matches get low confidences (listed, and at the default
        # threshold not recommended; a deployment that lowers the threshold still gets them).
        top_coverage = 0.0
    ranked: list[tuple[tuple, SearchResult]] = []
    for candidate in candidates:
        runbook = runbooks[candidate.pk]
        succeeded, finished = stats.get(candidate.pk, (0, 0))
        success = smoothed_success(succeeded, finished)
        confidence = confidence_from(
            score=candidate.score,
            top_score=top_score,
            success=success,
            automated=runbook.is_automated,
            top_coverage=top_coverage,
            feedback=feedback.get(candidate.pk, 0.0),
        )
        result = SearchResult(
            runbook=runbook,
            rank=0,
            confidence=round(confidence, 4),  # for display; ordering uses the exact value
            components={
                "semantic": round(candidate.semantic, 4),
                "keyword": round(candidate.keyword, 4),
                "title": round(candidate.title, 4),
                "coverage": round(candidate.coverage, 4),
                "score": round(candidate.score, 4),
                "success": round(success, 4),
                "automation": 1.0 if runbook.is_automated else 0.0,
                "feedback": round(feedback.get(candidate.pk, 0.0), 4),
            },
            success_rate=(succeeded / finished) if finished else None,
            success_samples=finished,
        )
        # Exact confidence, then the score (far-behind candidates all round to 0.0), then the slug.
        ranked.append(((-confidence, -candidate.score, runbook.slug), result))
    results = [result for _, result in sorted(ranked, key=lambda pair: pair[0])][:limit]
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
