"""The Gaps page's groups written for people: reasons in words, shares as percentages, the trend as a
small line with its numbers in words (analytics/services/gaps.py computes them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from analytics.services.gaps import REASON_LABELS, TREND_PERIODS, GapGroup
from analytics.services.page import percent

TREND_WIDTH, TREND_HEIGHT = 96, 24


@dataclass(frozen=True)
class GroupCard:
    group: GapGroup
    title: str
    reasons: list[str]
    failed: str
    trend_points: str  # SVG polyline points
    trend_words: str
    nearest: list[tuple[str, object, str]]  # (name, runbook id, similarity)


def _trend_points(trend: list[int]) -> str:
    top = max(trend) or 1
    step = TREND_WIDTH / max(1, len(trend) - 1)
    return " ".join(
        f"{i * step:.1f},{TREND_HEIGHT - 2 - (count / top) * (TREND_HEIGHT - 4):.1f}" for i, count in enumerate(trend)
    )


def group_card(group: GapGroup, *, start: dt.datetime, end: dt.datetime) -> GroupCard:
    days = (end - start).days / TREND_PERIODS
    period = f"{days:.0f} days" if days >= 1.5 else f"{days * 24:.0f} hours"
    return GroupCard(
        group=group,
        title=f"{group.size} question{'s' if group.size != 1 else ''}",
        reasons=[f"{count} {REASON_LABELS[reason]}" for reason, count in group.reasons.items() if count],
        failed=percent(group.failed_share),
        trend_points=_trend_points(group.trend),
        trend_words=f"Questions per {period}, oldest first: {', '.join(str(count) for count in group.trend)}",
        nearest=[(r.name or r.slug, r.runbook_id, f"{r.score:.2f}") for r in group.nearest],
    )
