"""Query coverage: how much of an alert the best candidate explains (part of the confidence)."""

import pytest

from runbooks.selectors import (
    confidence_from,
    document_terms,
    lexical_terms,
    query_coverage,
    runbook_search,
)
from runbooks.services import runbook_upsert
from tests.factories import RunbookFactory
from tests.runbooks.corpus import load_corpus


def test_words_no_candidate_knows_do_not_count():
    document = frozenset(lexical_terms("Filesystem almost out of inodes; delete small files"))
    known = set(document) | {"cpu"}
    query = lexical_terms("Filesystem on zq-host-44.example.zzq has few inodes left, cpu fine")
    # Known query words: filesystem, inod(es), cpu -> the runbook holds 2 of the 3; the host name,
    # "few", "left", "fine" are in no candidate and change nothing.
    assert query_coverage(document, query, known) == pytest.approx(2 / 3)
    assert query_coverage(document, query, set()) == 0.0


def test_better_explained_query_gets_more_confidence_and_order_stays_the_score_order():
    weak = confidence_from(score=1.0, top_score=1.0, success=0.5, automated=False, top_coverage=0.1)
    strong = confidence_from(score=1.0, top_score=1.0, success=0.5, automated=False, top_coverage=0.6)
    assert strong > weak
    # The coverage is the best candidate's, shared by the query's candidates: never reorders them.
    runner_up = confidence_from(score=0.95, top_score=1.0, success=0.5, automated=False, top_coverage=0.6)
    assert runner_up < strong


@pytest.mark.django_db
def test_document_terms_follow_an_edit(django_capture_on_commit_callbacks):
    runbook = RunbookFactory(name="QueueBacklog", description="Messages pile up", tags=[], steps=[])
    assert "inod" not in document_terms(runbook)
    with django_capture_on_commit_callbacks(execute=True):
        runbook_upsert(slug=runbook.slug, data={"description": "The volume runs out of inodes"})
    runbook.refresh_from_db()
    assert "inod" in document_terms(runbook)


@pytest.mark.django_db
def test_host_names_and_numbers_in_an_alert_do_not_lower_the_confidence(
    django_capture_on_commit_callbacks, staff_user
):
    load_corpus(django_capture_on_commit_callbacks)
    plain = runbook_search(query="TLS certificate served by the ingress expires soon", user=staff_user)
    noisy = runbook_search(
        query="TLS certificate served by the ingress expires soon on zq-lb-4471.qqexample.zzq:9443 (id 88213)",
        user=staff_user,
    )
    assert plain.results[0].runbook.slug == noisy.results[0].runbook.slug == "t/certexpiry"
    assert noisy.results[0].components["coverage"] == plain.results[0].components["coverage"]
    assert noisy.results[0].recommended
