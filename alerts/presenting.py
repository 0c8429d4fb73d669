"""What one engineer sees of the alerts: the stored ranking filtered to the runbooks they may see and
re-ranked 1..n, the strategy for those confidences under their experiment variant, and the one audited
presentation per (user, alert) that makes clicks on the alerts page count like clicks on a chat answer
(docs/alerts.md, "Where engineers see it").
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from aihelper.chat.answers import runbook_url
from aihelper.core.redaction import redact
from alerts.models import Alert, AlertGroup, AlertPresentation, RecommendationEvidence, RecommendationState
from alerts.selectors import VIEWER_PRESENTATIONS, VISIBLE_RECOMMENDATIONS, alerts_firing, alerts_resolved_since
from analytics.services.experiments import experiment_assignment_for
from audit.details import ActionDetails, PresentedSolution, RetrievalSummary
from audit.models import EventSource
from audit.services.store import audit_log_create
from runbooks.access import runbook_can_execute
from runbooks.calibration import presentation_strategy
from runbooks.search import SearchConfig
from runbooks.selectors import runbook_success_stats

FIRING_LIMIT = 100
RESOLVED_WINDOW = dt.timedelta(hours=24)
RESOLVED_LIMIT = 20
RESOLVED_LIMIT_ALL = 200
HIGH_CONFIDENCE = 0.8
SEVERITIES = ("critical", "error", "warning", "info")
LINK_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class ViewerRules:
    """The search rules of one reader: the settings with their experiment variant's overrides applied, as the
    chat applies them (aihelper.chat.services.orchestrator), and the groups that decide who may run what."""

    config: SearchConfig
    experiment: str = ""
    variant: str = ""
    group_ids: frozenset[int] = frozenset()


def viewer_rules(*, user, with_groups: bool = True) -> ViewerRules:
    assignment = experiment_assignment_for(user=user)
    config = SearchConfig.from_settings(**(assignment.overrides if assignment else {}))
    groups = frozenset(user.groups.values_list("pk", flat=True)) if with_groups else frozenset()
    return ViewerRules(
        config=config,
        experiment=assignment.experiment if assignment else "",
        variant=assignment.variant if assignment else "",
        group_ids=groups,
    )


def confidence_words(confidence: float, *, threshold: float) -> str:
    if confidence >= HIGH_CONFIDENCE:
        return "High"
    return "Medium" if confidence >= threshold else "Low"


@dataclass(frozen=True)
class RunbookCard:
    """One visible runbook of an alert's ranking, at the reader's rank."""

    rank: int
    runbook_id: str
    slug: str
    title: str
    confidence: float
    confidence_words: str
    recommended: bool
    evidence: str
    reason: str
    can_execute: bool
    is_automated: bool
    runbook_version: int
    url: str
    success_rate: float | None = None
    success_samples: int = 0

    @property
    def why(self) -> str:
        return RecommendationEvidence.LINKED.label if self.evidence == RecommendationEvidence.LINKED else self.reason


@dataclass(frozen=True)
class ViewerRanking:
    cards: tuple[RunbookCard, ...]  # every visible runbook of the stored ranking, ranks 1..n
    strategy: str
    threshold: float

    @property
    def recommended(self) -> tuple[RunbookCard, ...]:
        return tuple(card for card in self.cards if card.recommended)


def viewer_ranking(
    *, alert: Alert, rules: ViewerRules, user=None, stats: Mapping | None = None
) -> ViewerRanking:
    """The alert's prefetched visible recommendations re-ranked 1..n; ``recommended`` is the search's rule on
    the new ranks (rank <= max_recommended and confidence >= threshold). With ``user``, who may run each."""
    config, stats = rules.config, stats or {}
    cards = []
    for rank, row in enumerate(getattr(alert, VISIBLE_RECOMMENDATIONS, ()), start=1):
        runbook = row.runbook
        succeeded, finished = stats.get(runbook.pk, (0, 0))
        cards.append(
            RunbookCard(
                rank=rank,
                runbook_id=str(runbook.pk),
                slug=runbook.slug,
                title=runbook.name,
                confidence=row.confidence,
                confidence_words=confidence_words(row.confidence, threshold=config.threshold),
                recommended=rank <= config.max_recommended and row.confidence >= config.threshold,
                evidence=row.evidence,
                reason=row.reason,
                can_execute=user is not None
                and runbook_can_execute(runbook=runbook, user=user, user_group_ids=rules.group_ids),
                is_automated=runbook.is_automated,
                runbook_version=runbook.version,
                url=runbook_url(runbook.pk),
                success_rate=succeeded / finished if finished else None,
                success_samples=finished,
            )
        )
    confidences = sorted((card.confidence for card in cards if card.recommended), reverse=True)
    return ViewerRanking(
        cards=tuple(cards), strategy=presentation_strategy(confidences, config), threshold=config.threshold
    )


def duration_words(seconds: float) -> str:
    """45 -> "45 s", 720 -> "12 min", 7500 -> "2 h 5 min", 200000 -> "2 d 7 h"."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def http_link(url: object) -> str:
    """``url`` when it is an http(s) address, else "": a ``javascript:`` or ``data:`` link from an alert is
    never made clickable."""
    if not isinstance(url, str) or not url.strip():
        return ""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    return url.strip() if parts.scheme.lower() in LINK_SCHEMES and parts.netloc else ""


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _pairs(mapping: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(mapping, Mapping):
        return ()
    return tuple(sorted((str(key), value if isinstance(value, str) else str(value)) for key, value in mapping.items()))


@dataclass(frozen=True)
class AlertView:
    """An alert as the page shows it; every text is shown as text (the template auto-escapes it)."""

    alert: Alert
    severity: str
    severity_class: str
    summary: str
    description: str
    labels: tuple[tuple[str, str], ...]
    generator_link: str
    firing_for: str
    resolved_ago: str
    resolved_after: str
    state: str
    ranking: ViewerRanking
    cards: tuple[RunbookCard, ...] = ()  # what is presented: the audited cards once recorded
    strategy: str = ""
    audit_log_id: uuid.UUID | None = None
    search_query: str = ""

    @property
    def has_visible_runbooks(self) -> bool:
        return bool(self.ranking.cards)


@dataclass(frozen=True)
class GroupView:
    group: AlertGroup
    receiver: str
    labels: tuple[tuple[str, str], ...]
    external_link: str
    alerts: tuple[AlertView, ...]


@dataclass(frozen=True)
class AlertsPage:
    firing: tuple[GroupView, ...]
    firing_shown: int
    firing_limit: int
    resolved: tuple[AlertView, ...]
    resolved_more: bool
    resolved_window_hours: int


def alert_view(*, alert: Alert, ranking: ViewerRanking, now: dt.datetime) -> AlertView:
    annotations = alert.annotations if isinstance(alert.annotations, Mapping) else {}
    labels = alert.labels if isinstance(alert.labels, Mapping) else {}
    severity = _text(labels.get("severity"))
    ended = alert.ends_at
    return AlertView(
        alert=alert,
        severity=severity or "no severity",
        severity_class=severity.lower() if severity.lower() in SEVERITIES else "other",
        summary=_text(annotations.get("summary")),
        description=_text(annotations.get("description")) or _text(annotations.get("message")),
        labels=_pairs(labels),
        generator_link=http_link(alert.generator_url),
        firing_for=duration_words((now - alert.starts_at).total_seconds()),
        resolved_ago=duration_words((now - ended).total_seconds()) if ended else "",
        resolved_after=duration_words((ended - alert.starts_at).total_seconds()) if ended else "",
        state=alert.recommendation_state,
        ranking=ranking,
        cards=ranking.recommended,
        strategy=ranking.strategy,
        search_query=urlencode({"q": alert.alertname or alert.recommendation_query}),
    )


def _presented_solution(card: RunbookCard) -> PresentedSolution:
    return PresentedSolution(
        rank=card.rank,
        id=card.runbook_id,
        slug=card.slug,
        title=card.title,
        confidence=card.confidence,
        success_rate=card.success_rate,
        success_samples=card.success_samples,
        can_execute=card.can_execute,
        url=card.url,
        runbook_version=card.runbook_version,
    )


def presentation_context(alert: Alert) -> dict:
    """Where the presentation happened, stored as the audit log's (and its events') page context: the alert and
    when it started firing, so time to decision can be measured from the alert as well as from the page."""
    return {
        "path": "/alerts/",
        "alert_id": alert.pk,
        "fingerprint": alert.fingerprint,
        "alert_starts_at": alert.starts_at.isoformat(),
    }


def alert_presentation_record(*, user, alert: Alert, view: AlertView, rules: ViewerRules) -> AlertPresentation | None:
    """The audited presentation of ``alert``'s recommendations to ``user``: created once, like a chat answer
    (source ``alert``, the presented runbooks at the reader's ranks 1..n, one ``presented`` event each; clicks
    on the page's cards are recorded with the same source).

    Race-safe: two page loads at once both write an audit log, but only one AlertPresentation can exist for
    (alert, user); the loser's insert fails on that unique constraint once the winner commits, its savepoint
    (audit log and events with it) rolls back, and it returns the winner's row. None if the alert is gone.
    """
    ranking = view.ranking
    context = presentation_context(alert)
    details = ActionDetails(
        solutions=tuple(_presented_solution(card) for card in ranking.recommended),
        presentation_strategy=ranking.strategy,
        threshold=rules.config.threshold,
        experiment=rules.experiment,
        variant=rules.variant,
        retrieval=RetrievalSummary(candidates=len(ranking.cards)),
        page_context=context,
    )
    titles = ", ".join(card.title for card in ranking.recommended) or "no confident match"
    try:
        with transaction.atomic():
            audit_log = audit_log_create(
                user=user,
                session=None,
                # The alert's words as an engineer's question would be stored: secrets replaced (the gap
                # report and the chat's conversation search read it).
                query=redact(alert.recommendation_query or alert.alertname).text,
                response=f"Recommended for alert {alert.alertname or alert.fingerprint}: {titles}.",
                details=details,
                source=EventSource.ALERT,
                page_context=context,
            )
            return AlertPresentation.objects.create(
                alert=alert, user=user, audit_log=audit_log, presented_at=audit_log.created_at
            )
    except IntegrityError as exc:
        # Only the race this handles (another request presented it first) is swallowed; any other constraint
        # failure is a bug to see, not cards that silently go unaudited.
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) != "alert_presentation_user":
            raise
        return AlertPresentation.objects.select_related("audit_log").filter(alert=alert, user=user).first()


def _as_presented(view: AlertView, presentation: AlertPresentation) -> AlertView:
    """The cards as they were audited (their ranks and confidences, so a click always matches what the audit
    log presented), less any runbook the reader can no longer see; reasons and run rights are current."""
    details = ActionDetails.from_json(presentation.audit_log.ai_action_details)
    current = {card.runbook_id: card for card in view.ranking.cards}
    cards = tuple(
        replace(current[solution.id], rank=solution.rank, confidence=solution.confidence, recommended=True)
        for solution in details.runbook_solutions
        if solution.id in current
    )
    return replace(view, cards=cards, strategy=details.presentation_strategy, audit_log_id=presentation.audit_log_id)


def _presented(*, user, view: AlertView, rules: ViewerRules) -> AlertView:
    alert = view.alert
    existing = getattr(alert, VIEWER_PRESENTATIONS, None)
    presentation = existing[0] if existing else None
    if presentation is None and alert.recommendation_state == RecommendationState.DONE and view.has_visible_runbooks:
        presentation = alert_presentation_record(user=user, alert=alert, view=view, rules=rules)
    return _as_presented(view, presentation) if presentation else view


def _groups(views: Sequence[AlertView]) -> tuple[GroupView, ...]:
    """Alertmanager's groups in the order of their newest alert, each with its alerts newest first."""
    order: dict[int, list[AlertView]] = {}
    for view in views:
        order.setdefault(view.alert.group_id, []).append(view)
    groups = []
    for members in order.values():
        group = members[0].alert.group
        groups.append(
            GroupView(
                group=group,
                receiver=group.receiver.name,
                labels=_pairs(group.group_labels),
                external_link=http_link(group.external_url),
                alerts=tuple(members),
            )
        )
    return tuple(groups)


def _success_stats(alerts: Iterable[Alert]) -> dict:
    ids = {row.runbook_id for alert in alerts for row in getattr(alert, VISIBLE_RECOMMENDATIONS, ())}
    return runbook_success_stats(ids) if ids else {}


def alerts_page_build(*, user, resolved_all: bool = False, now: dt.datetime | None = None) -> AlertsPage:
    """The alerts page for ``user``: firing alerts grouped (each presented and audited once per user when its
    ranking is ready), then the alerts resolved in the last RESOLVED_WINDOW."""
    now = now or timezone.now()
    rules = viewer_rules(user=user)
    firing = list(alerts_firing(user=user)[:FIRING_LIMIT])
    resolved_limit = RESOLVED_LIMIT_ALL if resolved_all else RESOLVED_LIMIT
    resolved = list(alerts_resolved_since(user=user, since=now - RESOLVED_WINDOW)[: resolved_limit + 1])
    stats = _success_stats(firing)
    firing_views = [
        _presented(
            user=user,
            view=alert_view(
                alert=alert, ranking=viewer_ranking(alert=alert, rules=rules, user=user, stats=stats), now=now
            ),
            rules=rules,
        )
        for alert in firing
    ]
    resolved_views = tuple(
        alert_view(alert=alert, ranking=viewer_ranking(alert=alert, rules=rules), now=now)
        for alert in itertools.islice(resolved, resolved_limit)
    )
    return AlertsPage(
        firing=_groups(firing_views),
        firing_shown=len(firing_views),
        firing_limit=FIRING_LIMIT,
        resolved=resolved_views,
        resolved_more=len(resolved) > resolved_limit,
        resolved_window_hours=int(RESOLVED_WINDOW.total_seconds() // 3600),
    )
