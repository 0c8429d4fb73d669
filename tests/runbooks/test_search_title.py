"""The title/tags tsvector (migration 0004), term pruning by document frequency, prefix title matching."""

import pytest
from django.db import connection

from runbooks.embeddings import EmbeddingError
from runbooks.lexical import lexical_terms, query_words, title_coverage
from runbooks.models import Runbook
from runbooks.search import runbook_search
from runbooks.sql import TitleVector, selective_words
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db


def _title_vector(runbook) -> str:
    return Runbook.objects.filter(pk=runbook.pk).annotate(v=TitleVector()).values_list("v", flat=True).get()


def test_trigger_fills_title_vector_with_camelcase_and_acronyms_split_and_weights():
    runbook = RunbookFactory(name="CPUThrottlingHigh", slug="kubernetes/cputhrottlinghigh", tags=["cpu", "quota"])
    vector = _title_vector(runbook)
    assert "'throttl':" in vector and "'high':" in vector
    assert "'cputhrottlinghigh':" in vector
    assert "A" in vector.split("'throttl':")[1].split(" ")[0]
    assert "B" in vector.split("'quota':")[1].split(" ")[0]
    assert "step" not in vector and "runbook" not in vector  # steps and description stay out


def test_trigger_keeps_title_vector_current_on_update_and_bulk_create():
    runbook = RunbookFactory(name="PodCrashLooping", tags=["pod"])
    Runbook.objects.filter(pk=runbook.pk).update(name="NodeDiskFull", tags=["disk"])
    vector = _title_vector(runbook)
    assert "'disk':" in vector and "'crash':" not in vector
    (created,) = Runbook.objects.bulk_create([Runbook(slug="t/bulk", name="EtcdMembersDown", tags=["etcd"])])
    assert "'member':" in _title_vector(created)


def test_title_vector_has_a_gin_index():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'runbooks_search_title_gin'")
        (indexdef,) = cursor.fetchone()
    assert "gin (search_title)" in indexdef


@pytest.mark.parametrize(
    "text",
    [
        "disk & | ! <-> :* full",
        "'unbalanced \"quotes",
        "back\\slash \\\\ disk",
        "🔥🔥 pod crash 💥",
        "'; DROP TABLE runbooks; --",
        "%s %(name)s {} $1",
        "\x00 nul byte",
        "ünïcödé ДИСК 磁盘",
        "word " * 500,
    ],
)
def test_term_pruning_never_raises_and_keeps_only_query_words(text):
    words = query_words(text)
    kept = selective_words(words)
    assert set(kept) <= set(words)
    assert kept == [word for word in words if word in kept]  # order kept
    assert len(words) <= 64


def test_prefix_matching_covers_abbreviated_alert_names():
    query = lexical_terms("Network interface is reporting many transmit errors on node bond0")
    assert title_coverage("NodeNetworkTransmitErrs", query) == 1.0
    assert title_coverage("KubeMemoryOvercommit", lexical_terms("memory overcommitted")) == 2 / 3
    assert title_coverage("NodeClockSkewDetected", lexical_terms("pod crash")) == 0.0


def test_keyword_only_search_finds_by_title_and_document_when_embedding_fails(staff_user, monkeypatch):
    class Broken:
        def embed_query(self, text):
            raise EmbeddingError("model missing")

    monkeypatch.setattr("runbooks.search.get_embedder", lambda: Broken())
    RunbookFactory(slug="t/clock", name="NodeClockSkewDetected", description="NTP is not configured.")
    RunbookFactory(slug="t/other", name="SomethingElse", description="Nothing related.")
    outcome = runbook_search(query="Clock skew detected on host", user=staff_user)
    assert outcome.degraded
    assert outcome.results[0].runbook.slug == "t/clock"
    outcome = runbook_search(query="NTP configured", user=staff_user)
    assert [r.runbook.slug for r in outcome.results] == ["t/clock"]


def test_full_text_indexes_have_no_pending_list():
    """fastupdate off (migration 0006): a pending list is scanned linearly by every search until vacuum."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN "
            "('runbooks_search_vector_gin', 'runbooks_search_title_gin') ORDER BY relname"
        )
        rows = cursor.fetchall()
    assert rows == [
        ("runbooks_search_title_gin", ["fastupdate=off"]),
        ("runbooks_search_vector_gin", ["fastupdate=off"]),
    ]
