"""gunicorn settings for `make serve` (production mode); every value overridable by env."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Two processes per usable core (the CPU affinity, not every core of the host), at most 4, with 4 threads
# each. Measured on 2 cores (docs/benchmarks.md, tracking at 275 req/s offered, 32 clients, latency from
# the scheduled arrival): p99 34 ms with 4 x 4 against 139 ms with 2 x 8 — fewer threads per process
# contend less for one GIL — for ~10-20 % less closed-loop capacity. Each worker loads the embedding model
# on first use (~600 MB RSS) and holds one DB connection per thread: workers x threads x instances (x 2
# with ANALYTICS_DATABASE_URL) must stay below PostgreSQL's max_connections (100 for the embedded server).
workers = int(os.environ.get("GUNICORN_WORKERS", str(min(4, 2 * len(os.sched_getaffinity(0))))))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
accesslog = None  # the app logs one JSON line per request with its request id
errorlog = "-"
# Each worker loads the model itself (loaded on first use); preloading would share one
# torch runtime across forks, which is not fork-safe.
preload_app = False
