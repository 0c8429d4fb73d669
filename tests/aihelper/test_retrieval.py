"""The composition on top of the layers: search as engineers get it carries what analytics learned."""

from __future__ import annotations

import pytest
from django.utils import timezone

from aihelper.chat.retrieval import runbooks_find
from analytics.models import RunbookStats
from runbooks.search import SearchConfig, runbook_search

pytestmark = pytest.mark.django_db

QUERY = "node root filesystem almost full, pods evicted"
CONFIG = SearchConfig(threshold=0.0)


def _result(outcome, runbook):
    return next(result for result in outcome.results if result.runbook.pk == runbook.pk)


def test_learned_feedback_moves_the_confidence_only_where_it_is_wired(user, library):
    disk = library["test/node-disk-full"]
    RunbookStats.objects.create(runbook=disk, feedback_score=-1.0, computed_at=timezone.now())

    plain = _result(runbook_search(query=QUERY, user=user, config=CONFIG), disk)
    learned = _result(runbooks_find(query=QUERY, user=user, config=CONFIG), disk)

    assert plain.components["feedback"] == 0.0
    assert learned.components["feedback"] == -1.0
    assert learned.confidence < plain.confidence


def test_the_search_page_uses_learned_feedback(auth_client, library):
    disk = library["test/node-disk-full"]
    before = auth_client.get("/runbooks/", {"q": QUERY}).context["outcome"]
    RunbookStats.objects.create(runbook=disk, feedback_score=1.0, computed_at=timezone.now())
    after = auth_client.get("/runbooks/", {"q": QUERY}).context["outcome"]
    assert _result(after, disk).components["feedback"] == 1.0
    assert _result(after, disk).confidence > _result(before, disk).confidence
