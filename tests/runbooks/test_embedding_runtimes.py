"""The model's two runtimes (runbooks/embedding_runtimes.py): ONNX Runtime, made by `make install`, and PyTorch.

Stored vectors are made by whichever runtime a process had, so the two must agree on every text a user can
give: queries, and runbook documents long enough to be embedded in windows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.test import override_settings

from runbooks import embedding_runtimes
from runbooks.embedding_runtimes import OnnxRuntime, TorchRuntime, model_package_dir, onnx_problem
from runbooks.embeddings import EmbeddingError, MiniLMEmbedder, runbook_document_text

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "runbooks" / "demo_data" / "demo_runbooks.jsonl"
EXPORTED = Path(settings.EMBEDDING_ONNX_DIR)  # where `make install` exports it (the app reads it there too)

QUERIES = [
    "redis is evicting keys, used memory at maxmemory",
    "  pods CrashLoopBackOff on worker-3 after the deploy  ",
    "Zertifikat läuft in 2 Tagen ab — ingress-nginx, prod-eu",
    "kubectl get pods -n payments | grep -v Running",
    "x",
    "how do I fix it quickly?",
]


def _exported() -> Path:
    problem = onnx_problem(EXPORTED, model_package_dir())
    if problem:
        pytest.skip(f"{problem}: `make install` exports it (CI does)")
    return EXPORTED


def _documents() -> list[str]:
    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [runbook_document_text(name=row["title"], description=row.get("description", ""),
                                  tags=row.get("tags", []), steps=row.get("steps", [])) for row in rows]


def _in_a_worker(script: str, *, runtime: str) -> list[str]:
    """The words ``script`` prints, run in a fresh process of the app (as a web worker would embed)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "aihelper.settings", "EMBEDDING_RUNTIME": runtime,
           "EMBEDDING_ONNX_DIR": str(EXPORTED)}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def _embedder(runtime) -> MiniLMEmbedder:
    embedder = MiniLMEmbedder(cache_size=0)
    embedder._model = runtime
    return embedder


@pytest.fixture(scope="module")
def runtimes():
    return OnnxRuntime(model_package_dir(), _exported(), threads=1), TorchRuntime(model_package_dir(), threads=1)


def test_both_runtimes_give_the_same_query_vectors_alone_and_in_one_batch(runtimes):
    onnx, torch = _embedder(runtimes[0]), _embedder(runtimes[1])
    together = onnx.embed_queries(QUERIES)  # padded to the longest in one run
    for text, vector in zip(QUERIES, together, strict=True):
        alone = onnx.embed_query(text)
        reference = torch.embed_query(text)
        assert np.dot(vector, reference) > 0.99999, text
        assert np.dot(alone, reference) > 0.99999, text
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-5


def test_both_runtimes_cut_long_runbooks_into_the_same_windows_and_vectors(runtimes):
    onnx, torch = _embedder(runtimes[0]), _embedder(runtimes[1])
    documents = _documents()
    windows = [onnx._windows(text) for text in documents]
    assert windows == [torch._windows(text) for text in documents]
    assert any(len(cut) > 1 for cut in windows), "the demo runbooks include some longer than the model reads"
    for text, first, second in zip(documents, onnx.embed_documents(documents), torch.embed_documents(documents),
                                   strict=True):
        assert np.dot(first, second) > 0.99999, text[:60]


def test_the_app_embeds_with_the_exported_model_and_never_imports_torch():
    """A web worker with the export: ONNX Runtime, no PyTorch in the process (hundreds of MB per worker)."""
    _exported()
    script = (
        "import sys, django; django.setup()\n"
        "from runbooks.embeddings import get_embedder\n"
        "vector = get_embedder().embed_query('disk full on worker-3')\n"
        "print(get_embedder().runtime, len(vector), 'torch' in sys.modules)\n"
    )
    assert _in_a_worker(script, runtime="auto")[-3:] == ["onnx", "384", "False"]


def test_auto_falls_back_to_pytorch_without_an_export_and_onnx_says_what_to_run(tmp_path, caplog):
    with override_settings(EMBEDDING_RUNTIME="auto", EMBEDDING_ONNX_DIR=tmp_path / "absent"):
        embedder = MiniLMEmbedder(cache_size=0)
        assert embedder.runtime == "torch"
        assert len(embedder.embed_query("disk full")) == 384
    assert "no exported ONNX model" in caplog.text
    with override_settings(EMBEDDING_RUNTIME="onnx", EMBEDDING_ONNX_DIR=tmp_path / "absent"):
        with pytest.raises(EmbeddingError, match="make install"):
            MiniLMEmbedder(cache_size=0).embed_query("disk full")


def test_an_export_of_other_weights_is_not_used(tmp_path):
    """After a model package upgrade the old export would give other vectors than the stored ones."""
    stale = tmp_path / "stale"
    shutil.copytree(_exported(), stale)
    manifest = json.loads((stale / "manifest.json").read_text())
    (stale / "manifest.json").write_text(json.dumps({**manifest, "source_sha256": "0" * 64}))
    assert "other model weights" in onnx_problem(stale, model_package_dir())
    with override_settings(EMBEDDING_RUNTIME="auto", EMBEDDING_ONNX_DIR=stale):
        assert MiniLMEmbedder(cache_size=0).runtime == "torch"
    with override_settings(EMBEDDING_RUNTIME="onnx", EMBEDDING_ONNX_DIR=stale):
        with pytest.raises(EmbeddingError, match="export it again"):
            MiniLMEmbedder(cache_size=0).embed_query("disk full")


def test_the_export_command_leaves_a_current_export_alone_and_rejects_bad_arguments(capsys):
    exported = _exported()
    before = (exported / "model.onnx").stat().st_mtime_ns
    assert embedding_runtimes.main(["export", str(exported)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (exported / "model.onnx").stat().st_mtime_ns == before
    assert embedding_runtimes.main(["import"]) == 2
    assert "usage" in capsys.readouterr().err


class _Signalling:
    """The runtime, saying when a model run over several texts (a document batch) has started."""

    def __init__(self, inner) -> None:
        self.inner, self.batch_started = inner, threading.Event()
        self.thread_safe, self.max_seq_length, self.name = inner.thread_safe, inner.max_seq_length, inner.name

    def token_count(self, text):
        return self.inner.token_count(text)

    def encode(self, texts, **options):
        if len(texts) > 1:
            self.batch_started.set()
        return self.inner.encode(texts, **options)


def test_with_onnx_a_question_does_not_wait_behind_documents_being_embedded(runtimes):
    """A worker re-embedding a batch of long runbooks (an import, an edit) used to hold the model for the whole
    batch; with ONNX Runtime the chat question of another thread runs beside it."""
    runtime = _Signalling(runtimes[0])
    embedder = _embedder(runtime)
    documents = _documents() * 2  # long runbooks, several windows each: seconds of model time
    finished: dict[str, float] = {}

    def embed_documents():
        embedder.embed_documents(documents)
        finished["documents"] = time.monotonic()

    worker = threading.Thread(target=embed_documents)
    worker.start()
    assert runtime.batch_started.wait(timeout=120)  # the documents' model run is under way
    vector = embedder.embed_query("redis is evicting keys, used memory at maxmemory")
    finished["question"] = time.monotonic()
    worker.join(timeout=300)
    assert "documents" in finished and finished["question"] < finished["documents"]
    assert np.dot(vector, _embedder(runtimes[1]).embed_query("redis is evicting keys, used memory at maxmemory")) \
        > 0.99999


def test_with_onnx_concurrent_runs_give_the_vectors_of_one_at_a_time(runtimes):
    embedder = _embedder(runtimes[0])
    texts = [*QUERIES, *_documents()[:6]]
    expected = [embedder.embed_query(text) if index < len(QUERIES) else embedder.embed_documents([text])[0]
                for index, text in enumerate(texts)]
    results: dict[int, list[float]] = {}

    def run(index: int):
        results[index] = embedder.embed_query(texts[index]) if index < len(QUERIES) \
            else embedder.embed_documents([texts[index]])[0]

    failures: list[BaseException] = []

    def guarded(index: int):
        try:
            run(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert len(results) == len(texts)
    for index, text in enumerate(texts):
        assert np.dot(results[index], expected[index]) > 0.99999, text[:60]


def test_the_export_never_replaces_a_directory_that_is_not_an_export(tmp_path, capsys):
    """EMBEDDING_ONNX_DIR=.data by mistake must not delete the database beside it."""
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "PG_VERSION").write_text("18")
    with pytest.raises(FileExistsError, match="not an ONNX export"):
        embedding_runtimes.export(tmp_path)
    assert embedding_runtimes.main(["export", str(tmp_path)]) == 1
    assert "not an ONNX export" in capsys.readouterr().err
    assert (tmp_path / "pg" / "PG_VERSION").read_text() == "18"


def test_an_export_made_by_an_older_export_procedure_is_made_again(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(_exported(), old)
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))
    assert "older version of this export" in onnx_problem(old, model_package_dir())


def test_a_document_batch_hands_its_memory_back():
    """ONNX Runtime keeps a run's peak memory for the life of the process unless told otherwise: after one batch
    of 32 long windows a worker kept ~700 MB (measured). Document batches release it; the next query works."""
    _exported()
    script = (
        "import django; django.setup()\n"
        "from runbooks.embeddings import get_embedder\n"
        "def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 // 2**20\n"
        "embedder = get_embedder(); embedder.embed_query('warm up')\n"
        "before = rss()\n"
        "embedder.embed_documents(['Title: X\\n' + 'the kubelet restarts the pod when the probe fails ' * 30] * 32)\n"
        "print(embedder.runtime, before, rss(), len(embedder.embed_query('disk full')))\n"
    )
    runtime, before, after, dimensions = _in_a_worker(script, runtime="onnx")[-4:]
    assert runtime == "onnx" and dimensions == "384"
    assert int(after) - int(before) < 250, (before, after)  # without the release: ~+675 MB
