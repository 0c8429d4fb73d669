"""Query coverage: how much of an alert the best candidate explains (part of the confidence)."""

import pytest

from runbooks.calibration import confidence_from
from runbooks.embeddings import EmbeddingError
from runbooks.lexical import document_terms, query_coverage
from runbooks.search import runbook_search
from runbooks.services import runbook_upsert
from tests.runbooks.corpus import load_corpus
from tests.runbooks.factories import RunbookFactory


def test_coverage_counts_known_words_and_is_shrunk_for_short_queries():
    # 8 known words, 6 in the runbook: 6 / (8 + 3).
    assert query_coverage(6, 8) == pytest.approx(6 / 11)
    # One known word, matched: far from "explains the query".
    assert query_coverage(1, 1) == pytest.approx(1 / 4)
    assert query_coverage(0, 0) == 0.0


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
def test_host_names_and_numbers_in_an_alert_do_not_lower_the_confidence(django_capture_on_commit_callbacks, staff_user):
    load_corpus(django_capture_on_commit_callbacks)
    plain = runbook_search(query="TLS certificate served by the ingress expires soon", user=staff_user)
    noisy = runbook_search(
        query="TLS certificate served by the ingress expires soon on zq-lb-4471.qqexample.zzq:9443 (id 88213)",
        user=staff_user,
    )
    assert plain.results[0].runbook.slug == noisy.results[0].runbook.slug == "t/certexpiry"
    assert noisy.results[0].components["coverage"] == plain.results[0].components["coverage"]
    assert noisy.results[0].recommended


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["error", "failed", "alert firing", "high"])
def test_short_generic_queries_recommend_nothing(django_capture_on_commit_callbacks, staff_user, query):
    load_corpus(django_capture_on_commit_callbacks)
    outcome = runbook_search(query=query, user=staff_user)
    assert outcome.recommended == [], [(r.runbook.slug, r.confidence) for r in outcome.results]


@pytest.mark.django_db
def test_keyword_only_search_lists_matches_without_coverage_and_recommends_nothing_by_default(
    django_capture_on_commit_callbacks, staff_user, monkeypatch
):
    load_corpus(django_capture_on_commit_callbacks)

    class Broken:
        def embed_query(self, text):
            raise EmbeddingError("model missing")

    monkeypatch.setattr("runbooks.search.get_embedder", lambda: Broken())
    outcome = runbook_search(query="TLS certificate served by the ingress expires soon", user=staff_user)
    assert outcome.degraded
    assert outcome.results[0].runbook.slug == "t/certexpiry"
    assert outcome.recommended == [] and outcome.strategy == "no_solutions"
    assert outcome.results[0].confidence < 0.1  # the coverage (1 of 1 known words here) is not used


@pytest.mark.django_db
def test_results_far_behind_the_leader_stay_in_score_order(django_capture_on_commit_callbacks, staff_user):
    load_corpus(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        for index, topic in enumerate(["kafka consumer lag", "redis memory", "dns resolution", "cron job"]):
            runbook_upsert(
                slug=f"a/{index}",  # alphabetically first: a slug tie-break would put these on top
                data={"name": f"Unrelated{index}", "description": f"About {topic}.", "tags": [], "steps": []},
            )
    outcome = runbook_search(query="The TLS certificate for shop.example.com expires in 3 days", user=staff_user)
    scores = [result.components["score"] for result in outcome.results]
    assert outcome.results[0].runbook.slug == "t/certexpiry"
    assert any(result.confidence == 0.0 for result in outcome.results)  # ties after rounding
    assert scores == sorted(scores, reverse=True)
