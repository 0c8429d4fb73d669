"""Health endpoints for load balancers: /healthz (process alive) and /readyz (dependencies)."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from psycopg_pool import PoolTimeout

from aihelper.chat.services.llm_gate import llm_gate
from aihelper.core.api_errors import json_view
from aihelper.core.embedded_state import server_state
from aihelper.core.sql import pgvector_version
from runbooks.embeddings import EmbeddingError, get_embedder


@json_view("GET")
@never_cache
async def healthz(request):  # async: answered in the event loop, never queued behind a thread
    return JsonResponse({"status": "ok"})


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        version = pgvector_version()
    except DatabaseError as exc:
        pool = connection.process_pool
        if isinstance(exc.__cause__, PoolTimeout) and not getattr(pool.connection_class, "unreachable", True):
            # Every pooled connection is lent out: the database is there, this worker is saturated. Still ready
            # (taking it out of the load balancer would only move its load); the pool says how full it is.
            return {"ok": True, "saturated": "no free database connection within DB_POOL_TIMEOUT", **_pool()}
        return {"ok": False, "error": f"database unavailable: {exc.__class__.__name__}", **_embedded_server(),
                **_pool()}
    if version is None:
        return {"ok": False, "error": "pgvector extension is not installed (run migrate)"}
    return {"ok": True, "pgvector": version, "ms": round((time.perf_counter() - started) * 1000, 1), **_pool()}


def _pool() -> dict:
    """This process's connection pool (DB_POOL_MAX_SIZE > 0): how full it is and how many requests wait."""
    pool = connection.process_pool
    if pool is None:
        return {}
    stats = pool.get_stats()
    return {"pool": {"size": stats.get("pool_size", 0), "available": stats.get("pool_available", 0),
                     "max": stats.get("pool_max", 0), "waiting": stats.get("requests_waiting", 0)}}


def _embedded_server() -> dict:
    """For the embedded default: whether the outage heals by itself or was a deliberate stop."""
    pgdata = settings.DATABASES["default"].get("EMBEDDED_PGDATA")
    if not pgdata:
        return {}
    state = server_state(Path(pgdata))
    if state.stopped_on_purpose:
        return {"embedded_server": "stopped on purpose (manage.py embedded_db stop); not restarted automatically"}
    return {"embedded_server": "running" if state.running else "down; restarting automatically"}


def _check_embedder() -> dict:
    started = time.perf_counter()
    try:
        vector = get_embedder().embed_query("readiness probe")
    except EmbeddingError as exc:
        return {"ok": False, "error": str(exc)}
    if len(vector) != get_embedder().dimensions:
        return {"ok": False, "error": f"model returned {len(vector)} dimensions"}
    return {"ok": True, "model": get_embedder().model_name, "runtime": getattr(get_embedder(), "runtime", ""),
            "ms": round((time.perf_counter() - started) * 1000, 1)}


@json_view("GET")
@never_cache
def readyz(request):
    checks = {"database": _check_database(), "embedding_model": _check_embedder()}
    ready = all(check["ok"] for check in checks.values())
    # Detail, not a check: a busy helper is still ready (beyond the cap it answers with the busy answer).
    body = {"status": "ready" if ready else "unavailable", "checks": checks, "llm": llm_gate.status().to_json()}
    return JsonResponse(body, status=200 if ready else 503)
