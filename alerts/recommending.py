"""The runbooks recommended for an alert, over the whole catalogue (docs/alerts.md, "Recommendations").

``alert_recommend`` runs in the worker (alerts/tasks.py). It searches with the alert's query
(alerts/queries.py) through the chat's own retrieval (``aihelper.chat.retrieval.runbooks_find``: the same
hybrid search and learned click feedback) as the operator reader, who sees every active, enabled runbook:
the stored ranking is for everyone, and what one viewer sees is it filtered to the runbooks they may see.
Then the alert's own evidence goes first:

1. **linked** -- the rule's ``runbook_url`` is a runbook's ``source_url`` (as an address: scheme and host
   case, trailing ``/`` and fragment aside), or its path ends in a runbook's slug or in the last part of one;
2. **alias** -- the ``alertname`` is a runbook's name or one of its ``aliases`` (without case);
3. **search** -- the rest, in search order.

A linked runbook's confidence is at least ``LINKED_CONFIDENCE``, an alias match's at least
``ALIAS_CONFIDENCE``: the rule author (or the runbook's author) said which runbook this is, which is
stronger evidence than any text similarity. ``recommended`` is the search's rule on the final ranks: rank
<= ``max_recommended`` and confidence >= the threshold.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from aihelper.chat.retrieval import runbooks_find
from alerts.models import Alert, AlertRecommendation, RecommendationEvidence, RecommendationState
from alerts.queries import AlertText, alert_query, runbook_url, url_slugs, url_variants
from runbooks.models import ALERT_NAMES, Runbook
from runbooks.search import InvalidQuery, SearchConfig, SearchOutcome, SearchResult, searchable_runbooks
from runbooks.selectors import operator_reader

logger = logging.getLogger(__name__)

MAX_RECOMMENDATIONS = 10
LINKED_CONFIDENCE = 0.99
ALIAS_CONFIDENCE = 0.9
LINKED_REASON = "Linked by the alert rule (runbook_url)"
ALIAS_REASON = "Alert name matches the runbook's title/alias"


@dataclass(frozen=True)
class Recommendation:
    """One runbook of an alert's ranking before it is stored (rank = position)."""

    runbook_id: uuid.UUID
    slug: str
    confidence: float
    evidence: str
    reason: str


@dataclass(frozen=True)
class AlertRanking:
    """What the recommendation found for an alert: the query, the ranking, and the search it came from."""

    query: str
    recommendations: tuple[Recommendation, ...]
    search: SearchOutcome | None
    linked_id: uuid.UUID | None = None


def search_reason(result: SearchResult, *, degraded: bool) -> str:
    """Why the search ranked ``result`` where it did, in words (from its components)."""
    components = result.components
    parts = []
    if components.get("named"):
        parts.append("the alert names this runbook")
    if components.get("semantic", 0.0) >= 0.5:
        parts.append(f"similar in meaning ({components['semantic']:.0%})")
    if components.get("title", 0.0) >= 0.5:
        parts.append("the runbook's title words are in the alert")
    if not parts:
        parts.append("words in common with the alert")
    mode = "Keyword search (semantic search unavailable)" if degraded else "Search"
    return f"{mode}: {'; '.join(parts)}"


def _published_at(url: str) -> tuple[uuid.UUID, str] | None:
    """(pk, slug) of the searchable runbook whose ``source_url`` is ``url`` as an address."""
    variants = url_variants(url)
    if not variants:
        return None
    return (
        searchable_runbooks(operator_reader())
        .alias(lower_url=Lower("source_url"))
        .filter(lower_url__in=variants)
        .order_by("slug")
        .values_list("pk", "slug")
        .first()
    )


def linked_runbook(url: str) -> tuple[uuid.UUID, str] | None:
    """(pk, slug) of the runbook the alert's ``runbook_url`` names, or None: its ``source_url``, else the
    longest slug its path ends in, else the one runbook whose slug's last part is the path's last part."""
    if not url:
        return None
    found = _published_at(url)
    if found:
        return found
    slugs = url_slugs(url)
    if not slugs:
        return None
    runbooks = searchable_runbooks(operator_reader())
    by_slug = dict(runbooks.filter(slug__in=slugs).values_list("slug", "pk"))
    for slug in slugs:
        if slug in by_slug:
            return by_slug[slug], slug
    tails = list(runbooks.filter(slug__endswith=f"/{slugs[-1]}").order_by("slug").values_list("pk", "slug")[:2])
    # Two runbooks ending in the same name (demo/x and kubernetes/x): the address does not say which.
    return tails[0] if len(tails) == 1 else None


def named_runbooks(alertname: str) -> list[tuple[uuid.UUID, str]]:
    """(pk, slug) of the runbooks whose name or an alias is ``alertname`` (without case), by slug."""
    name = alertname.strip()
    if not name:
        return []
    return list(
        searchable_runbooks(operator_reader())
        .alias(alert_names=ALERT_NAMES)
        .filter(alert_names__contains=[name.lower()])
        .order_by("slug")
        .values_list("pk", "slug")
    )


class _RecentSearches:
    """The searches of the last ``SEARCH_REUSE_SECONDS`` by query, per worker process.

    An alert storm is many instances of few alert rules: their queries are the same words (the instance
    labels are not in the query, alerts/queries.py), so the search each of them would run is the same one.
    Re-using a search seconds old changes nothing a reader could tell (the catalogue and the learned feedback
    move in minutes), and a degraded search (no embedding model) is never re-used.
    """

    def __init__(self, max_entries: int = 512) -> None:
        self._entries: OrderedDict[tuple, tuple[float, SearchOutcome]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def get(self, key: tuple) -> SearchOutcome | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] > settings.ALERT_SEARCH_REUSE_SECONDS:
                return None
            return entry[1]

    def put(self, key: tuple, outcome: SearchOutcome) -> None:
        if outcome.degraded or settings.ALERT_SEARCH_REUSE_SECONDS <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), outcome)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)


    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_recent = _RecentSearches()


def recent_searches_clear() -> None:
    """Forget the re-usable searches (tests that build a new catalogue for the same words)."""
    _recent.clear()


def _search(query: str, config: SearchConfig) -> SearchOutcome | None:
    if not query:
        return None
    key = (query, config)
    outcome = _recent.get(key)
    if outcome is not None:
        return outcome
    try:
        outcome = runbooks_find(query=query, user=operator_reader(), limit=MAX_RECOMMENDATIONS, config=config)
    except InvalidQuery:
        return None
    _recent.put(key, outcome)
    return outcome


def alert_ranking(alert: Alert, *, config: SearchConfig | None = None) -> AlertRanking:
    """The ranking for ``alert`` (module doc), not stored: linked first, then alias matches, then search."""
    config = config or SearchConfig.from_settings()
    text = AlertText(alertname=alert.alertname, annotations=alert.annotations or {}, labels=alert.labels or {})
    query = alert_query(text, max_chars=config.max_query_chars)
    outcome = _search(query, config)
    results = {result.runbook.pk: result for result in (outcome.results if outcome else ())}
    degraded = bool(outcome and outcome.degraded)

    def confidence(pk: uuid.UUID, floor: float) -> float:
        found = results.get(pk)
        return max(found.confidence, floor) if found else floor

    ranking: dict[uuid.UUID, Recommendation] = {}
    linked = linked_runbook(runbook_url(text.annotations, text.labels))
    if linked:
        pk, slug = linked
        ranking[pk] = Recommendation(
            pk, slug, confidence(pk, LINKED_CONFIDENCE), RecommendationEvidence.LINKED, LINKED_REASON
        )
    position = {pk: index for index, pk in enumerate(results)}
    named = sorted(named_runbooks(alert.alertname), key=lambda row: (position.get(row[0], len(position)), row[1]))
    for pk, slug in named:
        if pk not in ranking:
            ranking[pk] = Recommendation(
                pk, slug, confidence(pk, ALIAS_CONFIDENCE), RecommendationEvidence.ALIAS, ALIAS_REASON
            )
    for pk, result in results.items():
        if pk not in ranking:
            reason = search_reason(result, degraded=degraded)
            ranking[pk] = Recommendation(
                pk, result.runbook.slug, result.confidence, RecommendationEvidence.SEARCH, reason
            )
    return AlertRanking(
        query=query,
        recommendations=tuple(ranking.values())[:MAX_RECOMMENDATIONS],
        search=outcome,
        linked_id=linked[0] if linked else None,
    )


@transaction.atomic
def _store(*, alert_id: int, ranking: AlertRanking, config: SearchConfig, force: bool) -> bool:
    """Replace the alert's ranking with ``ranking`` (ranks 1..n) and mark it done; False when the alert is
    gone, or another run finished it first (without ``force``)."""
    alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
    if alert is None or (alert.recommendation_state == RecommendationState.DONE and not force):
        return False
    AlertRecommendation.objects.filter(alert=alert).delete()
    # A re-used search (``_RecentSearches``) may name a runbook deleted since: it is left out, not a failure.
    ids = [item.runbook_id for item in ranking.recommendations]
    existing = set(Runbook.objects.filter(pk__in=ids).values_list("pk", flat=True))
    kept = [item for item in ranking.recommendations if item.runbook_id in existing]
    AlertRecommendation.objects.bulk_create(
        AlertRecommendation(
            alert=alert,
            runbook_id=item.runbook_id,
            rank=rank,
            confidence=round(item.confidence, 4),
            recommended=rank <= config.max_recommended and item.confidence >= config.threshold,
            evidence=item.evidence,
            reason=item.reason,
        )
        for rank, item in enumerate(kept, start=1)
    )
    alert.recommendation_state = RecommendationState.DONE
    alert.recommended_at = timezone.now()
    alert.recommendation_query = ranking.query
    alert.save(update_fields=["recommendation_state", "recommended_at", "recommendation_query"])
    return True


def alert_recommend(*, alert_id: int, force: bool = False) -> None:
    """Rank the catalogue's runbooks for alert ``alert_id`` and store the ranking (module doc).

    Idempotent: an alert already ``done`` is left as it is unless ``force`` (then its ranking is replaced,
    never added to). A deleted alert is logged and skipped. A database error propagates, so the worker
    retries; the alert stays ``pending`` meanwhile (``alert_recommendation_failed`` marks it failed). A
    search without the embedding model degrades to keyword search (``SearchOutcome.degraded``) and its
    ranking is stored like any other.
    """
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        logger.info("alert %s is gone; nothing to recommend", alert_id)
        return
    if alert.recommendation_state == RecommendationState.DONE and not force:
        return
    config = SearchConfig.from_settings()
    ranking = alert_ranking(alert, config=config)
    if ranking.search and ranking.search.degraded:
        logger.warning("alert %s: %s", alert_id, ranking.search.degraded_reason)
    _store(alert_id=alert_id, ranking=ranking, config=config, force=force)


def alert_recommendation_failed(*, alert_id: int) -> None:
    """Mark the alert's recommendation failed (for the worker's last attempt); a done alert stays done."""
    Alert.objects.filter(pk=alert_id).exclude(recommendation_state=RecommendationState.DONE).update(
        recommendation_state=RecommendationState.FAILED
    )
