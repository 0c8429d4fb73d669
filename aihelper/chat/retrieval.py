"""Runbook search as engineers get it: retrieval (runbooks) with what analytics learned from clicks.

runbooks sits below analytics, so the search takes the learned feedback as an argument; this module,
on the top layer, is the one place that wires the two together for the chat, the search page and
``manage.py search_runbooks``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from analytics.selectors import runbook_feedback_scores
from runbooks.search import SearchConfig, SearchOutcome, runbook_search


def runbooks_find(
    *, query: str, user, limit: int = 10, config: SearchConfig | None = None, extra_ids: Sequence[uuid.UUID] = ()
) -> SearchOutcome:
    return runbook_search(
        query=query, user=user, limit=limit, config=config, feedback_scores=runbook_feedback_scores,
        extra_ids=extra_ids,
    )
