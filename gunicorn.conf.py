"""gunicorn settings for `make serve` (production mode); every value overridable by env."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# 8 threads: requests mostly wait on PostgreSQL, and a connection is pinned to the worker that accepted
# it, so with 4 threads a burst on one worker queued while the other idled (tracking p99 at 300 req/s,
# 32 clients: 77 ms with 4 threads, 45 ms with 8; docs/benchmarks.md). One DB connection per thread.
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
accesslog = None  # the app logs one JSON line per request with its request id
errorlog = "-"
# Each worker loads the model itself (loaded on first use); preloading would share one
# torch runtime across forks, which is not fork-safe.
preload_app = False
