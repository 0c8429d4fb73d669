"""The dashboard page for people: figures labelled in words, rates as percentages, durations in s / min.

Only the HTML page reads this. The JSON API (``presentation.dashboard_as_json``) and the CSV export
(``presentation.dashboard_tables``) keep their machine-readable numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.services.dashboard import Dashboard
from audit.models import EventSource, EventType

NO_DATA = "–"


def percent(value: float | None) -> str:
    """0.375 -> "37.5%"; one decimal, because dashboard rates are compared point by point (variants, days)."""
    if value is None:
        return NO_DATA
    text = f"{value * 100:.1f}".removesuffix(".0")
    return f"{text}%"


def interval(bounds: tuple[float, float] | None) -> str:
    if bounds is None:
        return ""
    low, high = (f"{bound * 100:.1f}".removesuffix(".0") for bound in bounds)
    return f"{low}–{high}%"


def duration(seconds: float | None) -> str:
    """115.39 -> "1 min 55 s"; under a minute one decimal ("9.5 s"); from an hour on, hours and minutes."""
    if seconds is None:
        return NO_DATA
    if seconds < 60:
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def count(value: int | None) -> str:
    return NO_DATA if value is None else f"{value:,}".replace(",", " ")


def decimal(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:.2f}"


def strategy_label(strategy: str, *, empty: str = "None recorded") -> str:
    return strategy.replace("_", " ").capitalize() if strategy else empty


def source_label(source: str) -> str:
    if source == EventSource.ALERT:
        return "Alerts"
    return EventSource(source).label if source in EventSource.values else (source or "None recorded")


def step_label(step: str) -> str:
    return EventType(step).label if step in EventType.values else step.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    hint: str = ""


@dataclass(frozen=True)
class PageTable:
    """A table as the page shows it: ``rows`` always, ``more_rows`` (if any) behind "Show all"."""

    name: str
    title: str
    headers: list[str]
    rows: list[list[str]]
    more_rows: list[list[str]] | None = None
    more_label: str = ""
    empty: str = "No data in this range."
    wide: bool = False


@dataclass(frozen=True)
class DashboardPage:
    figures: list[Figure]
    tables: list[PageTable]


def _figures(dashboard: Dashboard) -> list[Figure]:
    rates, abandon, overall = dashboard.rates, dashboard.abandon, dashboard.time_to_decision[0]
    return [
        Figure("Answers", count(rates.audit_logs), "questions answered in this range"),
        Figure("With a recommendation", percent(rates.recommendation_rate), "answers that presented a runbook"),
        Figure("Click-through", percent(rates.click_through_rate), "recommended answers with a click"),
        Figure("First choice right", percent(rates.first_choice_accuracy), "first click on the top runbook"),
        Figure("Mean reciprocal rank", decimal(rates.mean_reciprocal_rank), "1.00: always the first runbook"),
        Figure("Several runbooks clicked", percent(rates.multi_click_rate), "clicked answers with 2 or more"),
        Figure("Abandoned", percent(abandon.abandon_rate), "no click within 30 minutes"),
        Figure("Time to decision (median)", duration(overall.median_seconds), "from the answer to the first click"),
        Figure("Time to decision (90th percentile)", duration(overall.p90_seconds), "9 in 10 decided faster"),
    ]


def _daily(dashboard: Dashboard) -> PageTable:
    """Only the days with answers; every day of the range behind "Show all N days" when some are empty."""
    rows = [
        [
            f"{d.day:%a %d %b %Y}",
            count(d.queries),
            count(d.recommendations),
            count(d.clicks),
            percent(d.click_through_rate),
        ]
        for d in dashboard.daily_trend
    ]
    active = [row for row, day in zip(rows, dashboard.daily_trend, strict=True) if day.queries]
    collapsed = len(active) < len(rows)
    return PageTable(
        "daily_trend",
        "Daily trend (days with answers)" if collapsed else "Daily trend",
        ["Day", "Answers", "With a recommendation", "Clicked", "Click-through"],
        active,
        more_rows=rows if collapsed and rows else None,
        more_label=f"Show all {len(rows)} days",
        empty=f"No answers on any of the {len(rows)} days.",
    )


def _by_source(dashboard: Dashboard) -> PageTable:
    """Every source's rates side by side; the alert row also has its start-to-click and click-to-resolved."""
    alerts = dashboard.alert_outcomes

    def alert_times(source: str) -> list[str]:
        if source != EventSource.ALERT or alerts is None:
            return ["", ""]
        return [duration(alerts.start_to_click_median_seconds), duration(alerts.click_to_resolved_median_seconds)]

    return PageTable(
        "by_source",
        "By source: alerts and chat side by side",
        [
            "Source",
            "Answers",
            "With a recommendation",
            "Click-through",
            "First choice right",
            "Time to decision (median)",
            "Alert start to first click (median)",
            "Click to resolved (median)",
        ],
        [
            [
                source_label(r.source),
                count(r.audit_logs),
                percent(r.recommendation_rate),
                percent(r.click_through_rate),
                percent(r.first_choice_accuracy),
                duration(r.decision_median_seconds),
                *alert_times(r.source),
            ]
            for r in dashboard.by_source
        ],
        wide=True,
    )


def _alert_outcomes(dashboard: Dashboard) -> PageTable:
    alerts = dashboard.alert_outcomes
    rows = []
    if alerts is not None and alerts.presentations:
        rows = [
            [
                "Alert start to first click",
                count(alerts.start_to_click_count),
                duration(alerts.start_to_click_median_seconds),
                duration(alerts.start_to_click_p90_seconds),
            ],
            [
                "First click to resolved",
                count(alerts.click_to_resolved_count),
                duration(alerts.click_to_resolved_median_seconds),
                duration(alerts.click_to_resolved_p90_seconds),
            ],
            ["Shown to an engineer (once per engineer and alert)", count(alerts.presentations), "", ""],
            ["… with a runbook clicked within 24 h", count(alerts.clicked), "", ""],
            ["… whose alert has resolved", count(alerts.resolved), "", ""],
        ]
    return PageTable(
        "alert_outcomes",
        "Alerts: from the start to the first click, and from the click to resolved",
        ["Measure", "Alerts", "Median", "90th percentile"],
        rows,
        empty="No alert was shown to an engineer in this range.",
    )


def _experiments(dashboard: Dashboard) -> PageTable:
    def with_interval(rate, bounds) -> str:
        return f"{percent(rate)} ({interval(bounds)})" if bounds else percent(rate)

    return PageTable(
        "experiments",
        "Experiments (95% intervals; sequential test against the control)",
        [
            "Experiment",
            "Variant",
            "Answers",
            "Clicked",
            "Click-through",
            "First choice right",
            "Difference",
            "p",
            "Decision",
        ],
        [
            [
                e.experiment,
                f"{e.variant} (control)" if e.is_control and e.variant != "control" else e.variant,
                count(e.audit_logs),
                f"{count(e.clicked)} of {count(e.recommended)}",
                with_interval(e.click_through_rate, e.ctr_interval),
                with_interval(e.first_choice_accuracy, e.accuracy_interval),
                "" if e.ctr_difference is None else f"{e.ctr_difference * 100:+.1f} points",
                "" if e.p_value is None else ("< 0.001" if e.p_value < 0.001 else f"{e.p_value:.3f}"),
                e.decision,
            ]
            for e in dashboard.experiments
        ],
        empty="No experiment ran in this range.",
        wide=True,
    )


def dashboard_page(dashboard: Dashboard) -> DashboardPage:
    """Key figures and tables of ``dashboard`` formatted for reading (the CSV export has the raw numbers)."""
    tables = [
        _daily(dashboard),
        _by_source(dashboard),
        _alert_outcomes(dashboard),
        PageTable(
            "funnel",
            "Funnel (per answer and runbook, within 24 h)",
            ["Step", "Count", "From the step before", "From presented", "Median time from the step before"],
            [
                [
                    step_label(s.step),
                    count(s.count),
                    percent(s.step_conversion),
                    percent(s.overall_conversion),
                    duration(s.median_seconds_from_previous) if index else "",
                ]
                for index, s in enumerate(dashboard.funnel)
            ],
        ),
        PageTable(
            "strategy_distribution",
            "Presentation strategies",
            ["Strategy", "Answers", "Recommended", "Clicked", "Click-through"],
            [
                [
                    strategy_label(s.strategy),
                    count(s.audit_logs),
                    count(s.recommended),
                    count(s.clicked),
                    percent(s.click_through_rate),
                ]
                for s in dashboard.strategy_distribution
            ],
        ),
        PageTable(
            "time_to_decision",
            "Time to decision (from the answer to the first click)",
            ["Strategy", "Clicked answers", "Median", "90th percentile"],
            [
                [
                    strategy_label(t.strategy, empty="All strategies"),
                    count(t.clicked),
                    duration(t.median_seconds),
                    duration(t.p90_seconds),
                ]
                for t in dashboard.time_to_decision
            ],
        ),
        PageTable(
            "click_rank_histogram",
            "Clicks by rank",
            ["Rank", "Shown", "Clicked", "Click-through"],
            [
                [str(r.rank), count(r.impressions), count(r.clicks), percent(r.impression_ctr)]
                for r in dashboard.click_rank_histogram
            ],
        ),
        PageTable(
            "carried_split",
            "Newly retrieved or carried over from earlier in the conversation",
            ["Solutions", "Shown", "Clicked", "Click-through"],
            [
                [
                    "Carried over" if r.carried_over else "Newly retrieved",
                    count(r.impressions),
                    count(r.clicks),
                    percent(r.impression_ctr),
                ]
                for r in dashboard.carried_split
            ],
        ),
        PageTable(
            "top_runbooks",
            "Top runbooks",
            ["Runbook", "Shown", "Clicked", "Click-through", "Mean click rank"],
            [
                [
                    r.name or r.slug,
                    count(r.impressions),
                    count(r.clicks),
                    percent(r.impression_ctr),
                    "" if r.mean_click_rank is None else f"{r.mean_click_rank:.1f}",
                ]
                for r in dashboard.top_runbooks
            ],
        ),
        _experiments(dashboard),
    ]
    return DashboardPage(_figures(dashboard), tables)
