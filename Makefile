# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | md5sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_ENV := SECRET_KEY=test-only-secret-key DEBUG=0 STATIC_MANIFEST=0 HF_HUB_OFFLINE=1 ANTHROPIC_API_KEY= THROTTLE_CHAT=10000/min

.PHONY: install run stop test lint serve migrate seed bench-retrieval bench-retrieval-scale bench-chat bench-tracking bench-reliability bench-analytics bench-gaps bench-feedback bench-hnsw bench-secrets bench-deps bench-llm-concurrency bench-conversations bench-alert-storm screenshots

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $(STAMP)

# The embedding model exported to ONNX from the installed package (offline; ~30 s once, then "up to date"):
# the app embeds with ONNX Runtime when it is there (runbooks/embedding_runtimes.py). A failed export is not fatal:
# the app then embeds with PyTorch (same vectors, slower) and says so in its log.
install: $(STAMP)
	@HF_HUB_OFFLINE=1 $(PY) -m runbooks.embedding_runtimes export || \
		echo "ONNX export failed (above): the app will embed with PyTorch" >&2

migrate: install
	DEBUG=1 $(PY) manage.py migrate --noinput

seed: migrate
	DEBUG=1 $(PY) manage.py seed_demo
	DEBUG=1 HF_HUB_OFFLINE=1 $(PY) manage.py generate_embeddings
	DEBUG=1 $(PY) manage.py seed_demo_alerts

# `make run PORT=8080 HOST=0.0.0.0` to change where it listens. Ctrl-C (or SIGTERM/SIGHUP to runserver) also
# stops the embedded PostgreSQL and leaves no stale pid (aihelper/core/embedded_exit.py).
# The task worker (alert recommendations, scheduled jobs) runs beside the web server and stops with it.
run: seed
	@DEBUG=1 HF_HUB_OFFLINE=1 $(PY) manage.py worker & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	DEBUG=1 HF_HUB_OFFLINE=1 $(PY) manage.py runserver $(HOST):$(PORT)

# Stops the embedded PostgreSQL and leaves a marker so the app does not restart it (`make run` starts it again).
stop:
	DEBUG=1 $(PY) manage.py embedded_db stop

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

test: install lint
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# PNGs of every page at 1366x900 and 390x844 into docs/screenshots/ (demo data on a throw-away test database).
screenshots: install
	$(TEST_ENV) $(PY) -m pytest -q -p no:cacheprovider tools/screenshots.py

serve: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput
	HF_HUB_OFFLINE=1 GUNICORN_BIND=$(HOST):$(PORT) $(VENV)/bin/gunicorn -c gunicorn.conf.py aihelper.asgi:application

bench-retrieval: install
	$(TEST_ENV) $(PY) benchmarks/retrieval.py

bench-chat: install
	$(TEST_ENV) $(PY) benchmarks/chat.py

bench-alert-storm: install
	$(TEST_ENV) $(PY) benchmarks/alert_storm.py $(BENCH_ARGS)

bench-conversations: install
	$(TEST_ENV) $(PY) benchmarks/conversations.py
	$(TEST_ENV) $(PY) benchmarks/conversations.py --file benchmarks/data/conversations_blind.jsonl

bench-retrieval-scale: install
	$(TEST_ENV) $(PY) benchmarks/retrieval.py --scale

bench-deps: install
	$(VENV)/bin/pip install -q -r requirements-bench.txt

bench-tracking: bench-deps
	$(TEST_ENV) $(PY) benchmarks/tracking_load.py $(BENCH_ARGS)

bench-reliability: bench-deps
	$(TEST_ENV) $(PY) benchmarks/reliability_load.py $(BENCH_ARGS)

bench-analytics: install
	$(TEST_ENV) $(PY) benchmarks/analytics_scale.py $(BENCH_ARGS)

bench-gaps: install
	$(TEST_ENV) $(PY) benchmarks/gaps.py $(BENCH_ARGS)

bench-feedback: install
	$(TEST_ENV) $(PY) benchmarks/feedback_simulation.py $(BENCH_ARGS)

bench-hnsw: install
	$(TEST_ENV) $(PY) benchmarks/hnsw_tuning.py $(BENCH_ARGS)

bench-llm-concurrency: install
	$(TEST_ENV) $(PY) benchmarks/llm_concurrency.py $(BENCH_ARGS)

bench-secrets: install
	$(PY) benchmarks/secret_redaction.py $(BENCH_ARGS)
