"""Runbook health beside the gaps: the stale flags of ``update_runbook_stats`` plus runbooks whose
recommendations are rarely clicked or often marked "Does not fit" in the range, with the figures."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from analytics.models import RunbookStats
from analytics.services.dashboard import reader_filter
from analytics.services.page import percent
from analytics.sql.gaps import runbook_feedback_counts
from analytics.sql.metrics import pair_summary
from runbooks.selectors import visible_runbooks

RARELY_CLICKED_SHOWN = 20  # presentations before a click-through can be called rare
RARELY_CLICKED_CTR = 0.05
DOES_NOT_FIT_MIN = 3
DOES_NOT_FIT_SHARE = 0.10  # of the presentations


@dataclass(frozen=True)
class RunbookHealth:
    runbook_id: uuid.UUID
    slug: str
    name: str
    shown: int
    clicked: int
    does_not_fit: int
    fits: int
    failed: int
    succeeded: int
    problems: list[str]
    owner_group_id: int | None = None  # the runbook's owning group (runbooks authoring): who to tell
    owner_group: str = ""


def _problems(shown: int, clicked: int, does_not_fit: int, stale_reason: str) -> list[str]:
    problems = [stale_reason] if stale_reason else []
    if shown >= RARELY_CLICKED_SHOWN and clicked / shown < RARELY_CLICKED_CTR:
        problems.append(f"rarely clicked: {clicked} of {shown} times shown ({percent(clicked / shown)})")
    if does_not_fit >= DOES_NOT_FIT_MIN and shown and does_not_fit / shown >= DOES_NOT_FIT_SHARE:
        problems.append(
            f'marked "Does not fit" {does_not_fit} times in {shown} times shown ({percent(does_not_fit / shown)})'
        )
    return problems


def runbook_health(*, user, start: dt.datetime, end: dt.datetime) -> list[RunbookHealth]:
    """The runbooks ``user`` may see that have a problem, most problems first, then the most shown."""
    filters = reader_filter(user=user, start=start, end=end)
    shown = {row.runbook_id: row for row in pair_summary(filters, limit=100_000).top_runbooks}
    feedback = runbook_feedback_counts(start=start, end=end)
    stale = dict(RunbookStats.objects.exclude(stale_reason="").values_list("runbook_id", "stale_reason"))
    rows = []
    runbooks = visible_runbooks(user).values_list("pk", "slug", "name", "owner_group_id", "owner_group__name")
    for pk, slug, name, owner_id, owner in runbooks:
        row = shown.get(pk)
        impressions, clicks = (row.impressions, row.clicks) if row else (0, 0)
        does_not_fit, fits, failed, succeeded = feedback.get(pk, (0, 0, 0, 0))
        problems = _problems(impressions, clicks, does_not_fit, stale.get(pk, ""))
        if problems:
            rows.append(
                RunbookHealth(pk, slug, name, impressions, clicks, does_not_fit, fits, failed, succeeded, problems,
                              owner_group_id=owner_id, owner_group=owner or "")
            )
    return sorted(rows, key=lambda r: (-len(r.problems), -r.shown, r.slug))
