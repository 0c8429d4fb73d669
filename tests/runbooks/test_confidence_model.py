"""The confidence model of issue #16: each candidate's own probability, close candidates share, names count."""

import pytest

from runbooks.calibration import confidence_from
from runbooks.lexical import DocumentTerms, candidate_bm25, document_terms, lexical_terms
from runbooks.search import SearchConfig, runbook_search
from runbooks.services import runbook_upsert
from tests.runbooks.corpus import CORPUS, load_corpus
from tests.runbooks.factories import RunbookFactory


def _confidence(score, top_score, coverage=0.5):
    return confidence_from(score=score, top_score=top_score, success=0.5, automated=False, top_coverage=coverage)


def test_a_runner_up_close_behind_keeps_most_of_its_confidence():
    leader = _confidence(5.0, 5.0)
    # A tenth of a score point behind (a near-duplicate runbook): it loses little, not everything.
    close = _confidence(4.9, 5.0)
    assert leader - close < 0.1
    assert close > 0.5 * leader
    # Far behind, it is unlikely however good its own score.
    assert _confidence(3.0, 5.0) < 0.1


@pytest.mark.django_db
def test_confidences_are_not_shares_of_one_total(django_capture_on_commit_callbacks, staff_user):
    """Three copies of the right runbook each keep the confidence the one had alone: each is its own
    probability of being right, not a share of one total (their sum is well over 1)."""
    load_corpus(django_capture_on_commit_callbacks)
    query = "pod keeps restarting, CrashLoopBackOff on the api pod"
    alone = runbook_search(query=query, user=staff_user).results[0]
    assert alone.runbook.slug == "t/podcrash" and alone.confidence > 0.5
    crash = next(item for item in CORPUS if item["slug"] == "t/podcrash")
    with django_capture_on_commit_callbacks(execute=True):
        for copy in ("t/podcrash-copy-1", "t/podcrash-copy-2"):
            runbook_upsert(slug=copy, data={key: value for key, value in crash.items() if key != "slug"})
    tied = runbook_search(query=query, user=staff_user).results[:3]
    assert {result.runbook.slug for result in tied} == {"t/podcrash", "t/podcrash-copy-1", "t/podcrash-copy-2"}
    assert all(abs(result.confidence - alone.confidence) < 0.05 for result in tied), [r.confidence for r in tied]
    assert sum(result.confidence for result in tied) > 1.0


def test_bm25_weighs_words_by_how_few_candidates_contain_them():
    query = lexical_terms("pod backoff limit exceeded")
    with_rare = DocumentTerms(counts={"backoff": 1, "limit": 1, "pod": 1}, length=20)
    common_only = DocumentTerms(counts={"pod": 3}, length=20)
    also_common = DocumentTerms(counts={"pod": 1, "restart": 1}, length=20)
    scores = candidate_bm25(query, [common_only, with_rare, also_common])
    assert scores[1] == 1.0
    # "pod" is in every candidate: it tells them apart by little, however often a runbook repeats it.
    assert scores[0] < 0.15 and scores[2] < 0.15
    assert candidate_bm25(query, []) == []


@pytest.mark.django_db
def test_document_terms_count_repeated_words():
    runbook = RunbookFactory(name="DiskFull", description="disk disk full", tags=[], steps=[])
    terms = document_terms(runbook)
    assert terms.count("disk") == 3 and terms.count("full") == 2 and terms.count("absent") == 0
    assert terms.length == 5


@pytest.mark.django_db
def test_two_runbooks_that_both_fit_are_both_recommended(django_capture_on_commit_callbacks, staff_user):
    load_corpus(django_capture_on_commit_callbacks)
    crash = next(item for item in CORPUS if item["slug"] == "t/podcrash")
    with django_capture_on_commit_callbacks(execute=True):
        # The same problem written up twice (two teams' copies): neither may push the other to zero.
        runbook_upsert(slug="t/podcrash-copy", data={key: value for key, value in crash.items() if key != "slug"})
    outcome = runbook_search(query="pod keeps restarting, CrashLoopBackOff on the api pod", user=staff_user)
    first, second = outcome.results[:2]
    assert {first.runbook.slug, second.runbook.slug} == {"t/podcrash", "t/podcrash-copy"}
    assert first.recommended and second.recommended
    assert abs(first.confidence - second.confidence) < 0.05
    assert outcome.strategy == "multiple_options"


@pytest.mark.django_db
def test_an_alert_name_in_the_query_is_evidence_for_its_runbook(django_capture_on_commit_callbacks, staff_user):
    load_corpus(django_capture_on_commit_callbacks)
    vague = "firing again on the edge ingress, please advise"
    named = f"[FIRING:1] TLSCertificateExpiringSoon {vague}"
    without = runbook_search(query=vague, user=staff_user)
    with_name = runbook_search(query=named, user=staff_user)
    top = with_name.results[0]
    assert top.runbook.slug == "t/certexpiry" and top.components["named"] == 1.0 and top.recommended
    before = next((r.confidence for r in without.results if r.runbook.slug == "t/certexpiry"), 0.0)
    assert top.confidence > before + 0.2


@pytest.mark.django_db
def test_default_threshold_and_experimental_band(settings):
    config = SearchConfig.from_settings()
    assert config.threshold == settings.AIHELPER_CONFIDENCE_THRESHOLD == 0.4
    assert config.threshold + config.experimental_margin == pytest.approx(0.5)
