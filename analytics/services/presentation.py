"""The dashboard for people: the API's JSON body, the page's (and CSV export's) tables, the chart series."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from analytics.services.dashboard import Dashboard
from analytics.services.page import step_label, strategy_label


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
        "carried_split": _rows(dashboard.carried_split),
        "funnel": _rows(dashboard.funnel),
        "daily_trend": _rows(dashboard.daily_trend),
        "experiments": _rows(dashboard.experiments),
        "by_source": _rows(dashboard.by_source),
        "alert_outcomes": asdict(dashboard.alert_outcomes) if dashboard.alert_outcomes else None,
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
    alerts = dashboard.alert_outcomes
    specs = [
        ("kpis", "Key figures", ["metric", "value"], [[name, value] for name, value in kpis]),
        (
            "daily_trend",
            "Daily trend",
            ["day", "queries", "recommendations", "clicks", "click_through_rate"],
            [[r.day, r.queries, r.recommendations, r.clicks, r.click_through_rate] for r in dashboard.daily_trend],
        ),
        (
            "by_source",
            "By source",
            [
                "source",
                "audit_logs",
                "recommended",
                "clicked",
                "first_click_rank1",
                "recommendation_rate",
                "click_through_rate",
                "first_choice_accuracy",
                "decided",
                "time_to_decision_median_seconds",
                "time_to_decision_p90_seconds",
            ],
            [
                [
                    r.source,
                    r.audit_logs,
                    r.recommended,
                    r.clicked,
                    r.first_click_rank1,
                    r.recommendation_rate,
                    r.click_through_rate,
                    r.first_choice_accuracy,
                    r.decided,
                    r.decision_median_seconds,
                    r.decision_p90_seconds,
                ]
                for r in dashboard.by_source
            ],
        ),
        (
            "alert_outcomes",
            "Alerts: from the alert's start to the first click, and from the click to resolved",
            [
                "presentations",
                "recommended",
                "clicked",
                "resolved",
                "start_to_click_count",
                "start_to_click_median_seconds",
                "start_to_click_p90_seconds",
                "click_to_resolved_count",
                "click_to_resolved_median_seconds",
                "click_to_resolved_p90_seconds",
            ],
            [list(asdict(alerts).values())] if alerts and alerts.presentations else [],
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
            "carried_split",
            "Newly retrieved or carried over",
            ["carried_over", "impressions", "clicks", "impression_ctr"],
            [[r.carried_over, r.impressions, r.clicks, r.impression_ctr] for r in dashboard.carried_split],
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
    """The series the dashboard's charts draw (passed to the page with json_script), labelled for people."""
    return {
        "trend": {
            "labels": [r.day.isoformat() for r in dashboard.daily_trend],
            "queries": [r.queries for r in dashboard.daily_trend],
            "recommendations": [r.recommendations for r in dashboard.daily_trend],
            "clicks": [r.clicks for r in dashboard.daily_trend],
            "click_through_rate": [r.click_through_rate for r in dashboard.daily_trend],
        },
        "funnel": {
            "labels": [step_label(s.step) for s in dashboard.funnel],
            "counts": [s.count for s in dashboard.funnel],
        },
        "strategies": {
            "labels": [strategy_label(s.strategy) for s in dashboard.strategy_distribution],
            "audit_logs": [s.audit_logs for s in dashboard.strategy_distribution],
            "click_through_rate": [s.click_through_rate for s in dashboard.strategy_distribution],
        },
        "ranks": {
            "labels": [str(r.rank) for r in dashboard.click_rank_histogram],
            "clicks": [r.clicks for r in dashboard.click_rank_histogram],
            "impressions": [r.impressions for r in dashboard.click_rank_histogram],
        },
    }
