"""gunicorn settings for `make serve` (production mode); every value overridable by env.

ASGI: uvicorn workers (the uvicorn-worker package) run aihelper.asgi:application, so an answer waiting for the
LLM holds a coroutine, not a thread (docs/operations.md, docs/benchmarks.md "LLM concurrency").
"""

import os
import shutil
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Two processes per usable core (the CPU affinity, not every core of the host), at most 4. Each is one event
# loop: waiting answers cost no thread; the synchronous parts of a request (the ORM, the embedding model,
# templates) run on a short-lived thread of that request. Each worker loads the embedding model on first
# use (~200 MB RSS with the ONNX export, ~600 MB on the PyTorch fallback).
workers = int(os.environ.get("GUNICORN_WORKERS", str(min(4, 2 * len(os.sched_getaffinity(0))))))
worker_class = "uvicorn_worker.UvicornWorker"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
accesslog = None  # the app logs one JSON line per request with its request id
errorlog = "-"
# Each worker loads the model itself (loaded on first use); preloading would share one
# torch runtime across forks, which is not fork-safe.
preload_app = False

# Django's guidance under ASGI: no persistent connections (a request's sync code runs on a thread of its
# own, whose kept connection nobody would reuse), but psycopg's pool: each worker keeps up to
# DB_POOL_MAX_SIZE connections and a request borrows one instead of starting a PostgreSQL backend
# (docs/operations.md). DB_POOL_MAX_SIZE=0 turns it off.
os.environ["DB_CONN_MAX_AGE"] = "0"
os.environ.setdefault("DB_POOL_MAX_SIZE", "10")
# Prometheus metrics of every worker, added up by /metrics (aihelper/core/metrics.py). One directory per bind
# address: on_starting empties it, which must not reset the metrics of another server running from this checkout.
_bind_dir = "".join(char if char.isalnum() else "_" for char in bind)
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(BASE_DIR / ".data" / "prometheus" / _bind_dir))


def on_starting(server):
    # Values of a previous run's workers would be added to this run's.
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker):
    import gc
    import sys

    # The event loop hands each request's synchronous steps to a thread and back (the ORM, the model): every
    # hand-over waits for the GIL, which a busy thread gives up only every switch interval (5 ms by default).
    # 1 ms keeps /healthz and clicks quick beside answers being retrieved or written.
    sys.setswitchinterval(float(os.environ.get("GIL_SWITCH_INTERVAL", "0.001")))

    # Everything a worker keeps for its lifetime is loaded now, before the first request: the embedding model
    # (else the first engineer's question waits seconds for it) and every view (the URL patterns).
    from django.urls import get_resolver

    from runbooks.embeddings import EmbeddingError, get_embedder

    get_resolver().url_patterns  # noqa: B018 - imports every view
    if os.environ.get("GUNICORN_LOAD_MODEL", "1") == "1":
        try:
            get_embedder().embed_query("warm-up")
        except EmbeddingError as exc:  # the worker still serves: search falls back to keywords, /readyz says why
            worker.log.warning("embedding model not loaded at start: %s", exc)
    # ...and then frozen out of the garbage collector. A worker holds ~630,000 objects from Django, torch and
    # the model; each full collection walked all of them, stopping every thread of the worker for 350-450 ms
    # (the /healthz and click p99 under load, docs/benchmarks.md). Frozen objects are never scanned; what
    # requests create is collected as before. The collection first frees the start-up's own garbage.
    from django.db import connections

    for connection in connections.all():
        if connection.pool is not None:
            connection.pool.open(wait=False)  # its minimum of connections, opened in the background
    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    # A dead worker's in-flight gauges stop counting (multiprocess_mode="livesum").
    multiprocess.mark_process_dead(worker.pid)
