"""Questions that arrive together are embedded together (runbooks.embeddings.QueryBatcher), with the real model."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import numpy as np
import pytest

from runbooks import embeddings
from runbooks.embeddings import EmbeddingError, MiniLMEmbedder, QueryBatcher

QUESTIONS = [
    "redis is evicting keys, used memory at maxmemory",
    "node disk almost full, pods evicted",
    "postgres replication lag growing on the replica",
    "kafka consumer group lag keeps rising",
    "certificate expires in two days on the ingress",
    "pods in crashloopbackoff after the deploy",
]


class _CountingEmbedder(MiniLMEmbedder):
    """The real model; counts the texts of each model run."""

    def __init__(self) -> None:
        super().__init__(cache_size=64)
        self.run_sizes: list[int] = []

    def _encode(self, texts):
        self.run_sizes.append(len(texts))
        return super()._encode(texts)


@pytest.fixture(scope="module")
def shared_model():
    return embeddings.get_embedder().model


def test_questions_arriving_together_share_model_runs_and_get_the_vectors_of_one_at_a_time(shared_model):
    batched = _CountingEmbedder()
    batched._model = shared_model
    batcher = QueryBatcher(batched, max_batch=16)

    async def all_at_once():
        return await asyncio.gather(*(batcher.embed(text) for text in [*QUESTIONS, QUESTIONS[0]]))

    vectors = asyncio.run(all_at_once())

    # Asked in the same moment: one model run for the six different questions.
    assert batched.run_sizes == [len(QUESTIONS)]
    assert vectors[0] == vectors[-1]  # the same question twice: one computation, one answer
    alone = MiniLMEmbedder(cache_size=0)
    alone._model = shared_model
    for text, vector in zip(QUESTIONS, vectors, strict=False):
        assert np.allclose(vector, alone.embed_query(text), atol=1e-5), text
    # ...and the search finds them in the query cache.
    assert all(batched.is_cached(text) for text in QUESTIONS)


def test_runs_are_capped_at_the_batch_size(shared_model):
    batched = _CountingEmbedder()
    batched._model = shared_model
    batcher = QueryBatcher(batched, max_batch=2)

    async def all_at_once():
        return await asyncio.gather(*(batcher.embed(text) for text in QUESTIONS))

    asyncio.run(all_at_once())
    assert max(batched.run_sizes) == 2
    assert sum(batched.run_sizes) == len(QUESTIONS)


class _BrokenModel:
    max_seq_length = 256

    def encode(self, *args, **kwargs):
        raise RuntimeError("out of memory")


def test_a_model_failure_reaches_every_asker_and_the_next_run_still_happens(shared_model):
    broken = MiniLMEmbedder(cache_size=8)
    broken._model = _BrokenModel()
    batcher = QueryBatcher(broken, max_batch=16)

    async def ask():
        return await asyncio.gather(*(batcher.embed(text) for text in QUESTIONS[:3]), return_exceptions=True)

    results = asyncio.run(ask())
    assert all(isinstance(result, EmbeddingError) for result in results)
    assert "failed to encode" in str(results[0])

    broken._model = shared_model  # the model is back: the same batcher works again
    assert len(asyncio.run(ask())[0]) == 384


def test_a_cancelled_asker_does_not_take_the_others_down(shared_model):
    batched = _CountingEmbedder()
    batched._model = shared_model
    batcher = QueryBatcher(batched, max_batch=16)

    async def one_gives_up():
        first = asyncio.create_task(batcher.embed(QUESTIONS[0]))  # starts a run
        await asyncio.sleep(0)
        leaving = asyncio.create_task(batcher.embed(QUESTIONS[1]))
        staying = asyncio.create_task(batcher.embed(QUESTIONS[2]))
        await asyncio.sleep(0)
        leaving.cancel()
        return await first, await staying, leaving.cancelled()

    first, staying, cancelled = asyncio.run(one_gives_up())
    assert cancelled
    assert batched.run_sizes == [1, 1]  # the first alone (no waiting window), then the one still wanted
    assert len(first) == len(staying) == 384
    assert not batched.is_cached(QUESTIONS[1])  # nobody waited for it any more: not computed


def test_prefetch_puts_the_vector_where_the_search_finds_it_and_never_raises(monkeypatch, shared_model):
    cached = MiniLMEmbedder(cache_size=8)
    cached._model = shared_model
    monkeypatch.setattr(embeddings, "_embedder", cached)
    assert asyncio.run(embeddings.query_embedding_prefetch("kubelet not ready on node 7")) is True
    assert cached.is_cached("kubelet not ready on node 7")
    assert asyncio.run(embeddings.query_embedding_prefetch("")) is False

    broken = MiniLMEmbedder(cache_size=8)
    broken._model = _BrokenModel()
    monkeypatch.setattr(embeddings, "_embedder", broken)
    assert asyncio.run(embeddings.query_embedding_prefetch("kubelet not ready on node 7")) is False


def test_documents_and_questions_embedded_at_the_same_moment_in_threads_all_succeed(shared_model):
    """A runbook saved (its document re-embedded: word counts, then one model run over its windows) while other
    threads embed questions and count words: they share one tokenizer, whose padding and truncation each call
    sets. Without the embedder's lock a window run failed now and then ("Unable to create tensor": 2 of 20 runs
    in one measured loop, 0 in another); a race, so this can only catch it often, not always."""
    embedder = MiniLMEmbedder(cache_size=0)
    embedder._model = shared_model
    document = "Title: Disk pressure\n" + " ".join(f"step{i} check the volume" for i in range(100))
    assert len(embedder._windows(document)) > 1
    expected_document = embedder.embed_documents([document])[0]
    questions = [f"{text} on host {n}" for n in range(3) for text in QUESTIONS]
    errors: list[str] = []
    results: dict[str, list[float]] = {}
    documents_done = threading.Event()

    def documents():
        try:
            for _ in range(8):
                vector = embedder.embed_documents([document])[0]
                assert np.allclose(vector, expected_document, atol=1e-5)
        except EmbeddingError as exc:
            errors.append(str(exc))
        finally:
            documents_done.set()

    def ask():
        while not documents_done.is_set():
            for text in questions:
                try:
                    results[text] = embedder.embed_query(text)
                    embedder._token_count(text)
                except EmbeddingError as exc:
                    errors.append(str(exc))

    threads = [threading.Thread(target=documents), threading.Thread(target=ask)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert set(results) == set(questions)
    alone = MiniLMEmbedder(cache_size=0)
    alone._model = shared_model
    for text in questions[:6]:
        assert np.allclose(results[text], alone.embed_query(text), atol=1e-5)


def test_a_finished_event_loop_is_not_kept_alive_by_its_batcher(monkeypatch, shared_model):
    """Synchronous callers (commands, benchmarks, the test client) run an event loop per answer: the batcher of
    a finished loop must not keep it (and itself) in memory."""
    cached = MiniLMEmbedder(cache_size=8)
    cached._model = shared_model
    monkeypatch.setattr(embeddings, "_embedder", cached)
    loops = []

    async def ask(text):
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return await embeddings.query_embedding_prefetch(text)

    assert asyncio.run(ask("etcd has no leader")) is True
    assert asyncio.run(ask("etcd member down")) is True
    gc.collect()
    assert [loop() for loop in loops] == [None, None]


@pytest.mark.parametrize("when", ["before it started", "while the model runs"])
def test_a_stopped_run_fails_its_askers_instead_of_leaving_them_waiting(shared_model, when):
    """The event loop shutting down cancels the batcher's task: whoever waits for its vector gets an
    EmbeddingError (the search then embeds or degrades as without the batcher), never a wait without end."""
    batched = _CountingEmbedder()
    batched._model = shared_model
    batcher = QueryBatcher(batched, max_batch=16)

    async def stop():
        waiting = asyncio.create_task(batcher.embed(QUESTIONS[0]))
        await asyncio.sleep(0)  # the asker has queued its question and created the run's task
        if when == "while the model runs":
            while not batched.run_sizes:
                await asyncio.sleep(0.001)
        batcher._drainer.cancel()
        with pytest.raises(EmbeddingError, match="stopped"):
            await asyncio.wait_for(waiting, timeout=30)
        await asyncio.sleep(0)
        assert batcher._drainer is None

    asyncio.run(stop())


def test_by_default_a_run_holds_as_many_questions_as_suits_the_runtime(shared_model, settings):
    """ONNX Runtime costs as much per question in a run of several (padded to the longest), and every question of
    a run waits for all of it: one per run. PyTorch's runs of many cost far less per question: up to 16.
    EMBEDDING_QUERY_BATCH overrides either."""
    settings.EMBEDDING_QUERY_BATCH = 0
    batched = _CountingEmbedder()
    batched._model = shared_model
    expected = {"onnx": 1, "torch": 16}[shared_model.name]
    assert embeddings.query_batch_size(batched) == expected
    batcher = QueryBatcher(batched)  # what query_embedding_prefetch makes: the size found by the first run

    async def all_at_once():
        return await asyncio.gather(*(batcher.embed(text) for text in QUESTIONS))

    asyncio.run(all_at_once())
    assert batched.run_sizes == ([1] * len(QUESTIONS) if expected == 1 else [len(QUESTIONS)])

    settings.EMBEDDING_QUERY_BATCH = 4
    assert embeddings.query_batch_size(batched) == 4
