"""The synchronous steps of an async answer: where they run, how many at once, and the DB connection between.

An answer's retrieval and its write use the ORM and the embedding model, which are synchronous. They run
through ``sync_to_async`` thread-sensitively: on the request's own thread (Django's ASGI handler gives each
request one), so a test's transaction is visible to them as well.
"""

from __future__ import annotations

import asyncio
import weakref
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connections

# Per event loop (one per worker process under the ASGI server): how many answers may run their synchronous
# steps at once (CHAT_SYNC_CONCURRENCY). More threads than cores only make them, and every other request of
# the process, wait longer for the GIL and the CPU; the rest queue here as coroutines.
_gates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def sync_step(func, **kwargs):
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(settings.CHAT_SYNC_CONCURRENCY)
    async with gate:
        return await sync_to_async(func)(**kwargs)


def db_connections_release() -> None:
    """Hand this thread's connections back before the LLM wait (seconds), when they would not be kept anyway:
    under ASGI (CONN_MAX_AGE=0) Django closes them only when the response ends. Never inside a transaction
    (tests run in one)."""
    for conn in connections.all(initialized_only=True):
        if conn.settings_dict.get("CONN_MAX_AGE") == 0 and not conn.in_atomic_block:
            conn.close()


def run_to_end(async_function, **kwargs):
    """``async_function(**kwargs)`` for a synchronous caller. In a thread that already runs an event loop
    (Playwright's sync API in the browser tests) ``async_to_sync`` refuses, so it runs on a thread of its own,
    whose database connections are closed when it is done."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return async_to_sync(async_function)(**kwargs)

    def on_own_thread():
        try:
            return async_to_sync(async_function)(**kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(on_own_thread).result()
