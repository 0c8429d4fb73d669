"""The synchronous steps of an async answer: where they run, how many at once, and the DB connection between.

An answer's retrieval and its write use the ORM and the embedding model, which are synchronous. They run
through ``sync_to_async`` thread-sensitively: on the request's own thread (Django's ASGI handler gives each
request one), so a test's transaction is visible to them as well.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connections


@dataclass(eq=False)
class _Waiter:
    priority: Callable[[], int]
    order: int
    future: asyncio.Future


# Who goes first when a place frees: the last step of an answer under way (its reader waits for the write);
# then the retrieval of an answer that already holds an LLM slot (the slot is idle until it is done: putting it
# later would leave every slot held and unused under overload); then the retrieval of an answer already known
# to be busy (it needs no LLM: done in one more step); then the rest in arrival order.
FINISHING, HOLDING, BUSY, STARTING = 0, 1, 2, 3


class StepGate:
    """At most ``slots`` steps at once; when a place frees, the waiting step with the lowest priority (asked
    when the place frees, so it may change while waiting) goes, in arrival order among equals. Under overload
    the answers already under way complete first and new questions queue, instead of every step of every
    answer queueing behind every other."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiting if not waiter.future.done())

    async def acquire(self, *, priority: Callable[[], int]) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        waiter = _Waiter(priority, next(self._order), asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release()  # handed a place just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        self._waiting = [waiter for waiter in self._waiting if not waiter.future.done()]
        if not self._waiting:
            self._free += 1
            return
        chosen = min(self._waiting, key=lambda waiter: (waiter.priority(), waiter.order))
        self._waiting.remove(chosen)
        chosen.future.set_result(None)


# Per event loop (one per worker process under the ASGI server): how many answers may run their synchronous
# steps at once (CHAT_SYNC_CONCURRENCY). More threads than cores only make them, and every other request of
# the process, wait longer for the GIL and the CPU; the rest queue here as coroutines.
_gates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def sync_step(func, *, priority: Callable[[], int] = lambda: STARTING, **kwargs):
    """``func(**kwargs)`` on the request's thread once the gate lets it (``priority``: FINISHING, HOLDING, BUSY
    or STARTING, asked whenever a place frees)."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = StepGate(settings.CHAT_SYNC_CONCURRENCY)
    await gate.acquire(priority=priority)
    try:
        return await sync_to_async(func)(**kwargs)
    finally:
        gate.release()


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
