"""The analytics facade: the dashboard, experiments and learning from clicks (docs/analytics.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from analytics import estimators, queries
from analytics.models import Experiment, FactsState, RunbookStats, StatsRun

# --- Time ranges -------------------------------------------------------------------------------

MAX_RANGE_DAYS = 400
DEFAULT_RANGE_DAYS = 30


class InvalidRange(ValueError):
    """A user-supplied range that cannot be used; the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _parse_bound(value: str, *, name: str, zone: ZoneInfo, is_end: bool) -> dt.datetime:
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            moment = dt.datetime.combine(day + dt.timedelta(days=1 if is_end else 0), dt.time(), tzinfo=zone)
        else:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        raise InvalidRange(
            name, f"'{value}' is not an ISO 8601 date (2026-01-31) or date-time (2026-01-31T08:00:00Z)."
        ) from None
    return moment


def analytics_range_parse(
    *, start: str | None, end: str | None, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """(start, end exclusive) from ISO strings. A date means the whole day in settings.TIME_ZONE, so
    end=2026-01-31 includes the 31st. Missing: the last 30 days up to today inclusive."""
    zone = ZoneInfo(settings.TIME_ZONE)
    now = now or timezone.now()
    today = now.astimezone(zone).date()
    end_at = (
        _parse_bound(end, name="end", zone=zone, is_end=True)
        if end
        else dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    )
    start_at = (
        _parse_bound(start, name="start", zone=zone, is_end=False)
        if start
        else end_at - dt.timedelta(days=DEFAULT_RANGE_DAYS)
    )
    if start_at >= end_at:
        raise InvalidRange("start", f"start ({start_at.isoformat()}) must be before end ({end_at.isoformat()}).")
    if end_at - start_at > dt.timedelta(days=MAX_RANGE_DAYS):
        raise InvalidRange("end", f"The range may span at most {MAX_RANGE_DAYS} days.")
    return start_at, end_at


def visible_runbook_ids_for(user) -> list | None:
    """None (no restriction) for superusers, else the ids of the runbooks ``user`` may see."""
    from runbooks.selectors import visible_runbooks

    if user.is_superuser:
        return None
    return list(visible_runbooks(user).values_list("pk", flat=True))


# --- Experiments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str
    overrides: dict  # SearchConfig field -> value


def experiment_active(*, now: dt.datetime | None = None) -> Experiment | None:
    now = now or timezone.now()
    return (
        Experiment.objects.filter(starts_at__lte=now)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("starts_at", "pk")
        .first()
    )


def experiment_variant_for(*, experiment_key: str, variants: list[dict], user_id) -> dict:
    """Deterministic: the same (experiment, user) always gets the same variant, in proportion to weights."""
    digest = hashlib.sha256(f"{experiment_key}:{user_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(float(v["weight"]) for v in variants)
    cumulative = 0.0
    for variant in variants:
        cumulative += float(variant["weight"])
        if point < cumulative:
            return variant
    return variants[-1]


def experiment_assignment_for(*, user, now: dt.datetime | None = None) -> Assignment | None:
    """The caller's variant of the running experiment (None: no experiment, or anonymous).

    The orchestrator applies ``overrides`` with SearchConfig.from_settings(**overrides) and records
    experiment and variant in ai_action_details (and so in the events).
    """
    if user is None or not user.is_authenticated:
        return None
    experiment = experiment_active(now=now)
    if experiment is None:
        return None
    variant = experiment_variant_for(experiment_key=experiment.key, variants=experiment.variants, user_id=user.pk)
    return Assignment(experiment.key, variant["key"], dict(variant.get("overrides") or {}))


@dataclass(frozen=True)
class VariantResult:
    experiment: str
    variant: str
    is_control: bool
    audit_logs: int
    recommended: int
    clicked: int
    click_through_rate: float | None
    ctr_interval: tuple[float, float] | None
    first_choice_accuracy: float | None
    accuracy_interval: tuple[float, float] | None
    ctr_difference: float | None
    p_value: float | None
    decision: str


def experiment_analysis(
    counts: list[queries.VariantCounts], *, variant_order: dict[str, list[str]] | None = None, alpha: float = 0.05
) -> list[VariantResult]:
    """Per variant: CTR and first-choice accuracy with Wilson 95 % intervals; each non-control variant
    against the control with the mixture SPRT (always valid under daily peeking), Bonferroni over
    variants. The control is the experiment's first variant (else the first by name)."""
    variant_order = variant_order if variant_order is not None else _variant_orders({c.experiment for c in counts})
    by_experiment: dict[str, list[queries.VariantCounts]] = {}
    for row in counts:
        by_experiment.setdefault(row.experiment, []).append(row)
    results: list[VariantResult] = []
    for key, rows in sorted(by_experiment.items()):
        order = variant_order.get(key) or []
        rows.sort(key=lambda r: (order.index(r.variant) if r.variant in order else len(order), r.variant))
        control = next((r for r in rows if order and r.variant == order[0]), rows[0])
        comparisons = max(1, len(rows) - 1)
        for row in rows:
            is_control = row is control
            if is_control:
                test = estimators.SequentialResult(None, None, "control")
            else:
                test = estimators.msprt_two_proportions(
                    (control.clicked, control.recommended), (row.clicked, row.recommended), alpha=alpha / comparisons
                )
            results.append(
                VariantResult(
                    experiment=key,
                    variant=row.variant,
                    is_control=is_control,
                    audit_logs=row.audit_logs,
                    recommended=row.recommended,
                    clicked=row.clicked,
                    click_through_rate=queries.ratio(row.clicked, row.recommended),
                    ctr_interval=estimators.wilson_interval(row.clicked, row.recommended),
                    first_choice_accuracy=queries.ratio(row.first_click_rank1, row.clicked),
                    accuracy_interval=estimators.wilson_interval(row.first_click_rank1, row.clicked),
                    ctr_difference=test.difference,
                    p_value=test.p_value,
                    decision=_decision_text(test),
                )
            )
    return results


def _variant_orders(keys: set[str]) -> dict[str, list[str]]:
    return {
        e.key: [v.get("key") for v in e.variants if isinstance(v, dict)]
        for e in Experiment.objects.filter(key__in=keys)
    }


def _decision_text(test: estimators.SequentialResult) -> str:
    if test.decision == "control":
        return "control"
    if test.decision == "too few data":
        return f"keep running: fewer than {estimators.MIN_SAMPLE_PER_ARM} recommended answers in an arm"
    if test.decision == "no decision":
        return "keep running: no significant difference yet"
    return f"{test.decision} than control (click-through)"


# --- Rollups -------------------------------------------------------------------------------------

# A log is settled when no click or funnel step can still be attributed to it (24 h window + margin).
SETTLE_AFTER = queries.ATTRIBUTION_WINDOW + dt.timedelta(minutes=5)
FACTS_CHUNK = dt.timedelta(days=7)


@dataclass(frozen=True)
class FactsReport:
    settled_before: dt.datetime | None
    logs: int
    pairs: int


def analytics_facts_settled_before() -> dt.datetime | None:
    return FactsState.objects.filter(pk=1).values_list("settled_before", flat=True).first()


def analytics_facts_refresh(*, now: dt.datetime | None = None, progress=None) -> FactsReport:
    """Append the facts of audit logs that settled since the last run, a week per transaction.

    Incremental and resumable: each chunk commits together with the watermark, so a re-run (or a run
    after a crash) continues where the last one stopped and never writes a log twice. Metrics read
    facts before the watermark and compute newer logs live, so a stale watermark only costs speed.
    """
    say = progress or (lambda message: None)
    target = (now or timezone.now()) - SETTLE_AFTER
    state, _ = FactsState.objects.get_or_create(pk=1)
    cursor = state.settled_before or queries.audit_log_first_created()
    logs = pairs = 0
    if cursor is None:
        say("no audit logs yet")
        return FactsReport(state.settled_before, 0, 0)
    while cursor < target:
        chunk_end = min(cursor + FACTS_CHUNK, target)
        with transaction.atomic():
            state = FactsState.objects.select_for_update().get(pk=1)
            if state.settled_before and state.settled_before > cursor:
                cursor = state.settled_before  # another run got here first
                continue
            written = queries.facts_rebuild(start=cursor, end=chunk_end)
            state.settled_before, state.refreshed_at = chunk_end, timezone.now()
            state.save()
        logs, pairs = logs + written[0], pairs + written[1]
        say(f"facts up to {chunk_end:%Y-%m-%d %H:%M}: {written[0]} logs, {written[1]} presentations")
        cursor = chunk_end
    return FactsReport(cursor, logs, pairs)


# --- The dashboard --------------------------------------------------------------------------------


@dataclass
class Dashboard:
    start: dt.datetime
    end: dt.datetime
    time_zone: str
    filters: dict
    rates: queries.Rates
    abandon: queries.AbandonRate
    time_to_decision: list[queries.DecisionTime]
    top_runbooks: list[queries.RunbookRow]
    strategy_distribution: list[queries.StrategyRow]
    click_rank_histogram: list[queries.RankRow]
    funnel: list[queries.FunnelStep]
    daily_trend: list[queries.DayRow]
    experiments: list[VariantResult] = field(default_factory=list)


def analytics_dashboard(
    *,
    user,
    start: dt.datetime,
    end: dt.datetime,
    source: str | None = None,
    strategy: str | None = None,
    experiment: str | None = None,
    variant: str | None = None,
    now: dt.datetime | None = None,
    top_limit: int = 20,
) -> Dashboard:
    """Every metric for ``user`` (only runbooks they may see) over [start, end)."""
    options = {"source": source, "strategy": strategy, "experiment": experiment, "variant": variant}
    filters = queries.metric_filter(
        start=start,
        end=end,
        visible_runbook_ids=visible_runbook_ids_for(user),
        facts_before=analytics_facts_settled_before(),
        **options,
    )
    # Three scans instead of nine: the six per-log metrics share one, top runbooks and ranks another.
    logs = queries.log_summary(filters, now=now or timezone.now())
    pairs = queries.pair_summary(filters, limit=top_limit)
    return Dashboard(
        start=start,
        end=end,
        time_zone=settings.TIME_ZONE,
        filters={key: value for key, value in options.items() if value},
        rates=logs.rates,
        abandon=logs.abandon,
        time_to_decision=logs.time_to_decision,
        top_runbooks=pairs.top_runbooks,
        strategy_distribution=logs.strategy_distribution,
        click_rank_histogram=pairs.click_rank_histogram,
        funnel=queries.funnel(filters),
        daily_trend=logs.daily_trend,
        experiments=experiment_analysis(logs.experiment_variant_counts),
    )


def _iso(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _rows(items) -> list[dict]:
    return [{key: _iso(value) for key, value in asdict(item).items()} for item in items]


def dashboard_as_json(dashboard: Dashboard) -> dict:
    """The API body: every metric under its name in the issue; dates ISO 8601; null for 0/0."""
    rates, overall = dashboard.rates, dashboard.time_to_decision[0]
    return {
        "start": dashboard.start.isoformat(),
        "end": dashboard.end.isoformat(),
        "time_zone": dashboard.time_zone,
        "filters": dashboard.filters,
        "audit_logs": rates.audit_logs,
        "recommendation_rate": rates.recommendation_rate,
        "click_through_rate": rates.click_through_rate,
        "first_choice_accuracy": rates.first_choice_accuracy,
        "mean_reciprocal_rank": rates.mean_reciprocal_rank,
        "multi_click_rate": rates.multi_click_rate,
        "abandon_rate": dashboard.abandon.abandon_rate,
        "counts": {
            "audit_logs": rates.audit_logs,
            "recommended": rates.recommended,
            "clicked": rates.clicked,
            "first_click_rank1": rates.first_click_rank1,
            "multi_clicked": rates.multi_clicked,
            "abandon_eligible": dashboard.abandon.eligible,
            "abandoned": dashboard.abandon.abandoned,
        },
        "time_to_decision_seconds": {
            "median": overall.median_seconds,
            "p90": overall.p90_seconds,
            "clicked": overall.clicked,
            "by_strategy": _rows(dashboard.time_to_decision[1:]),
        },
        "top_runbooks": [{**row, "runbook_id": str(row["runbook_id"])} for row in _rows(dashboard.top_runbooks)],
        "strategy_distribution": _rows(dashboard.strategy_distribution),
        "click_rank_histogram": _rows(dashboard.click_rank_histogram),
        "funnel": _rows(dashboard.funnel),
        "daily_trend": _rows(dashboard.daily_trend),
        "experiments": _rows(dashboard.experiments),
    }


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, tuple):
        return f"{value[0]:.4f}-{value[1]:.4f}"
    return str(value)


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    headers: list[str]
    rows: list[list[str]]


def dashboard_tables(dashboard: Dashboard) -> dict[str, Table]:
    """Every table of the dashboard as text cells: the page and the CSV export render these same rows."""
    rates, abandon = dashboard.rates, dashboard.abandon
    kpis = [
        ("audit_logs", rates.audit_logs),
        ("recommendation_rate", rates.recommendation_rate),
        ("click_through_rate", rates.click_through_rate),
        ("first_choice_accuracy", rates.first_choice_accuracy),
        ("mean_reciprocal_rank", rates.mean_reciprocal_rank),
        ("multi_click_rate", rates.multi_click_rate),
        ("abandon_rate", abandon.abandon_rate),
        ("time_to_decision_median_seconds", dashboard.time_to_decision[0].median_seconds),
        ("time_to_decision_p90_seconds", dashboard.time_to_decision[0].p90_seconds),
    ]
    specs = [
        ("kpis", "Key figures", ["metric", "value"], [[name, value] for name, value in kpis]),
        (
            "daily_trend",
            "Daily trend",
            ["day", "queries", "recommendations", "clicks", "click_through_rate"],
            [[r.day, r.queries, r.recommendations, r.clicks, r.click_through_rate] for r in dashboard.daily_trend],
        ),
        (
            "funnel",
            "Funnel (per answer and runbook, within 24 h)",
            ["step", "count", "step_conversion", "overall_conversion", "median_seconds_from_previous"],
            [
                [s.step, s.count, s.step_conversion, s.overall_conversion, s.median_seconds_from_previous]
                for s in dashboard.funnel
            ],
        ),
        (
            "strategy_distribution",
            "Presentation strategies",
            ["strategy", "audit_logs", "recommended", "clicked", "click_through_rate"],
            [
                [s.strategy or "(none)", s.audit_logs, s.recommended, s.clicked, s.click_through_rate]
                for s in dashboard.strategy_distribution
            ],
        ),
        (
            "time_to_decision",
            "Time to decision (seconds to the first click)",
            ["strategy", "clicked", "median_seconds", "p90_seconds"],
            [[t.strategy or "(all)", t.clicked, t.median_seconds, t.p90_seconds] for t in dashboard.time_to_decision],
        ),
        (
            "click_rank_histogram",
            "Clicks by rank",
            ["rank", "impressions", "clicks", "impression_ctr"],
            [[r.rank, r.impressions, r.clicks, r.impression_ctr] for r in dashboard.click_rank_histogram],
        ),
        (
            "top_runbooks",
            "Top runbooks",
            ["slug", "name", "impressions", "clicks", "impression_ctr", "mean_click_rank"],
            [
                [r.slug, r.name, r.impressions, r.clicks, r.impression_ctr, r.mean_click_rank]
                for r in dashboard.top_runbooks
            ],
        ),
        (
            "experiments",
            "Experiments (95 % Wilson intervals; mixture SPRT against the control)",
            [
                "experiment",
                "variant",
                "audit_logs",
                "recommended",
                "clicked",
                "click_through_rate",
                "ctr_95",
                "first_choice_accuracy",
                "accuracy_95",
                "ctr_difference",
                "p_value",
                "decision",
            ],
            [
                [
                    e.experiment,
                    e.variant,
                    e.audit_logs,
                    e.recommended,
                    e.clicked,
                    e.click_through_rate,
                    e.ctr_interval,
                    e.first_choice_accuracy,
                    e.accuracy_interval,
                    e.ctr_difference,
                    e.p_value,
                    e.decision,
                ]
                for e in dashboard.experiments
            ],
        ),
    ]
    return {
        name: Table(name, title, headers, [[_fmt(cell) for cell in row] for row in rows])
        for name, title, headers, rows in specs
    }


def dashboard_charts(dashboard: Dashboard) -> dict:
    """The series the dashboard's charts draw (passed to the page with json_script)."""
    return {
        "trend": {
            "labels": [r.day.isoformat() for r in dashboard.daily_trend],
            "queries": [r.queries for r in dashboard.daily_trend],
            "recommendations": [r.recommendations for r in dashboard.daily_trend],
            "clicks": [r.clicks for r in dashboard.daily_trend],
            "click_through_rate": [r.click_through_rate for r in dashboard.daily_trend],
        },
        "funnel": {"labels": [s.step for s in dashboard.funnel], "counts": [s.count for s in dashboard.funnel]},
        "strategies": {
            "labels": [s.strategy or "(none)" for s in dashboard.strategy_distribution],
            "audit_logs": [s.audit_logs for s in dashboard.strategy_distribution],
            "click_through_rate": [s.click_through_rate for s in dashboard.strategy_distribution],
        },
        "ranks": {
            "labels": [str(r.rank) for r in dashboard.click_rank_histogram],
            "clicks": [r.clicks for r in dashboard.click_rank_histogram],
            "impressions": [r.impressions for r in dashboard.click_rank_histogram],
        },
    }


# --- Learning from clicks -------------------------------------------------------------------------

STATS_WINDOW_DAYS = 180
STALE_NO_VIEWS_DAYS = 90
STALE_MIN_RANK1_IMPRESSIONS = 20
STALE_MAX_RANK1_CTR = 0.05
STALE_MIN_FINISHED = 5
STALE_MAX_FAILURE_RATE = 0.5


@dataclass(frozen=True)
class StatsReport:
    skipped: bool
    runbooks: int
    stale: int
    propensities: dict


def stale_reasons(
    *,
    rank1_impressions: int,
    rank1_clicks: int,
    succeeded: int,
    failed: int,
    last_interaction_at,
    runbook_created_at,
    now,
) -> str:
    reasons = []
    if rank1_impressions >= STALE_MIN_RANK1_IMPRESSIONS and rank1_clicks / rank1_impressions < STALE_MAX_RANK1_CTR:
        reasons.append(
            f"low click-through at rank 1 ({rank1_clicks}/{rank1_impressions} = {rank1_clicks / rank1_impressions:.0%})"
        )
    finished = succeeded + failed
    if finished >= STALE_MIN_FINISHED and failed / finished > STALE_MAX_FAILURE_RATE:
        reasons.append(f"high failure rate ({failed}/{finished} runs failed)")
    cutoff = now - dt.timedelta(days=STALE_NO_VIEWS_DAYS)
    if (last_interaction_at is None or last_interaction_at < cutoff) and runbook_created_at < cutoff:
        reasons.append(f"no clicks or views for {STALE_NO_VIEWS_DAYS} days")
    return "; ".join(reasons)


def runbook_stats_update(*, force: bool = False, now: dt.datetime | None = None, progress=None) -> StatsReport:
    """Recompute RunbookStats for every enabled runbook from the last STATS_WINDOW_DAYS of events.

    Safe to re-run: everything is recomputed from the source rows and written in one transaction
    (upsert), so a second run gives the same rows. Skips (unless ``force``) when no event or finished
    execution arrived since the last run on the same day.
    """
    from runbooks.models import Runbook
    from runbooks.selectors import smoothed_success

    now = now or timezone.now()
    say = progress or (lambda message: None)
    max_ts, event_count = queries.event_watermark()
    execution_count = queries.execution_watermark()
    last = StatsRun.objects.first()
    if (
        not force
        and last is not None
        and last.computed_at.date() == now.date()
        and (last.max_event_timestamp, last.event_count, last.execution_count) == (max_ts, event_count, execution_count)
    ):
        say("no new events or executions since the last run today: nothing to do")
        stale = RunbookStats.objects.exclude(stale_reason="").count()
        return StatsReport(True, last.runbooks, stale, last.propensities)

    since = now - dt.timedelta(days=STATS_WINDOW_DAYS)
    say(f"reading presentations and clicks since {since:%Y-%m-%d}")
    rank_counts = queries.feedback_rank_counts(since=since, until=now)
    counts = {(row.runbook_id, row.rank): (row.impressions, row.clicks) for row in rank_counts}
    propensities = estimators.pbm_propensities(counts)
    ctrs = estimators.ipw_ctr(counts, propensities)
    scores = estimators.feedback_scores(ctrs)
    say(f"propensities by rank: { {k: round(v, 3) for k, v in propensities.items()} }")
    outcomes = {row.runbook_id: row for row in queries.feedback_outcome_counts(since=since, until=now)}

    rows = []
    for runbook_id, created_at in Runbook.objects.filter(enabled=True).values_list("pk", "created_at"):
        ctr = ctrs.get(runbook_id)
        outcome = outcomes.get(runbook_id)
        succeeded, failed = (outcome.succeeded, outcome.failed) if outcome else (0, 0)
        last_at = outcome.last_interaction_at if outcome else None
        rank1 = counts.get((runbook_id, 1), (0, 0))
        rows.append(
            RunbookStats(
                runbook_id=runbook_id,
                impressions=ctr.impressions if ctr else 0,
                clicks=ctr.clicks if ctr else 0,
                ctr=queries.ratio(ctr.clicks, ctr.impressions) if ctr else None,
                debiased_ctr=ctr.debiased_ctr if ctr else None,
                rank1_impressions=rank1[0],
                rank1_clicks=rank1[1],
                succeeded=succeeded,
                failed=failed,
                smoothed_success=smoothed_success(succeeded, succeeded + failed),
                feedback_score=round(scores.get(runbook_id, 0.0), 6),
                last_interaction_at=last_at,
                stale_reason=stale_reasons(
                    rank1_impressions=rank1[0],
                    rank1_clicks=rank1[1],
                    succeeded=succeeded,
                    failed=failed,
                    last_interaction_at=last_at,
                    runbook_created_at=created_at,
                    now=now,
                ),
                computed_at=now,
            )
        )
    update_fields = [f.name for f in RunbookStats._meta.concrete_fields if not f.primary_key]
    with transaction.atomic():
        RunbookStats.objects.exclude(runbook_id__in=[row.runbook_id for row in rows]).delete()
        RunbookStats.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["runbook"], update_fields=update_fields, batch_size=1000
        )
        StatsRun.objects.create(
            computed_at=now,
            max_event_timestamp=max_ts,
            event_count=event_count,
            execution_count=execution_count,
            propensities={str(k): v for k, v in propensities.items()},
            runbooks=len(rows),
        )
    stale = sum(1 for row in rows if row.stale_reason)
    say(f"{len(rows)} runbooks updated, {stale} flagged stale")
    return StatsReport(False, len(rows), stale, propensities)
