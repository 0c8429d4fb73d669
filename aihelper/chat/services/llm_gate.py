"""The cap on LLM calls in flight: per worker process, and per user within it.

An answer asks for a slot before calling the model. A free slot is taken at once; otherwise the answer
waits in a short queue (``LLM_QUEUE_WAIT_SECONDS``, at most ``LLM_QUEUE_MAX`` waiting) and, when none
frees in time, gets the busy answer (retrieval only, with a note) instead of waiting for someone
else's answer to finish. A user who already has ``LLM_MAX_IN_FLIGHT_PER_USER`` calls running gets the
busy answer at once: one engineer cannot take the whole cap. The queue is skipped when no slot can free in time
for this answer: once enough calls have finished, the gate knows how long the shortest tenth of them took, so how
many calls in flight may finish within the queue wait; when those are no more than the answers already waiting,
waiting would only delay the busy answer (under sustained overload every busy answer would otherwise cost the
whole queue wait).

Per process, not per instance: each gunicorn worker has its own counters, so an instance allows
workers x ``LLM_MAX_IN_FLIGHT``. That needs no shared state on the path of every answer; a per-instance
(or fleet-wide) budget would live in PostgreSQL or the API gateway. The counters are guarded by a
thread lock because a synchronous caller (tests, the development server) runs each answer in an
event loop of its own; waiting is a short poll, never a blocked thread.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import Counter, deque
from contextlib import asynccontextmanager
from dataclasses import dataclass

from django.conf import settings

from aihelper.core import metrics

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
# How long calls hold a slot, from the last DURATIONS_KEPT that finished; trusted from EXPECTED_SAMPLES on. The
# shortest SHORT_QUANTILE of them is how soon a call in flight may finish: a low quantile, so the queue is skipped
# only when even a short answer could not free a slot in time.
DURATIONS_KEPT = 64
EXPECTED_SAMPLES = 8
SHORT_QUANTILE = 0.1


class LLMBusy(Exception):
    """No slot for this call: ``reason`` goes to the audit log and the metrics."""

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "cap", "queue_full" or "user_cap"


@dataclass(frozen=True)
class GateStatus:
    in_flight: int
    waiting: int
    cap: int
    per_user_cap: int
    queue_max: int
    queue_wait_seconds: float
    next_free_in: float | None = None

    def to_json(self) -> dict:
        return {
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "cap": self.cap,
            "per_user_cap": self.per_user_cap,
            "queue_max": self.queue_max,
            "queue_wait_seconds": self.queue_wait_seconds,
            # When a slot may free (s), from recent calls' durations; null until enough calls have finished.
            "next_slot_in_seconds": None if self.next_free_in is None else round(self.next_free_in, 2),
            "scope": "per worker process",
        }


class LLMGate:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiting = 0
        self._per_user: Counter = Counter()
        self._held: dict[int, float] = {}  # slot token -> when it was taken (monotonic)
        self._tokens = itertools.count()
        self._durations: deque[float] = deque(maxlen=DURATIONS_KEPT)

    def status(self) -> GateStatus:
        next_free_in = self.next_free_in()
        with self._lock:
            return GateStatus(
                in_flight=self._in_flight,
                waiting=self._waiting,
                cap=settings.LLM_MAX_IN_FLIGHT,
                per_user_cap=settings.LLM_MAX_IN_FLIGHT_PER_USER,
                queue_max=settings.LLM_QUEUE_MAX,
                queue_wait_seconds=settings.LLM_QUEUE_WAIT_SECONDS,
                next_free_in=next_free_in,
            )

    def _try_take(self, user_key) -> tuple[str, int | None]:
        """('', the slot's token) when a slot was taken, else (why not: 'cap' or 'user_cap', None)."""
        with self._lock:
            if self._per_user[user_key] >= settings.LLM_MAX_IN_FLIGHT_PER_USER:
                return "user_cap", None
            if self._in_flight >= settings.LLM_MAX_IN_FLIGHT:
                return "cap", None
            self._in_flight += 1
            self._per_user[user_key] += 1
            token = next(self._tokens)
            self._held[token] = time.monotonic()
            metrics.LLM_IN_FLIGHT.set(self._in_flight)
            return "", token

    def _release(self, user_key, token: int, *, used: bool = True) -> None:
        """Give the slot back; ``used``: it was held for a call (its duration counts for ``next_free_in``)."""
        with self._lock:
            taken = self._held.pop(token)
            if used:
                self._durations.append(time.monotonic() - taken)
            self._in_flight -= 1
            self._per_user[user_key] -= 1
            if self._per_user[user_key] <= 0:
                del self._per_user[user_key]
            metrics.LLM_IN_FLIGHT.set(self._in_flight)

    def _shortest_call(self) -> float | None:
        """The shortest tenth of recent calls' durations; None while too few have finished. Under the lock."""
        if len(self._durations) < EXPECTED_SAMPLES:
            return None
        ordered = sorted(self._durations)
        return ordered[int(len(ordered) * SHORT_QUANTILE)]

    def next_free_in(self) -> float | None:
        """Seconds until a slot in use may free: the shortest tenth of recent calls' durations less the oldest
        call's age (0 when it may free any moment); None while too few calls have finished to tell."""
        with self._lock:
            shortest = self._shortest_call()
            if shortest is None or not self._held:
                return None
            return max(0.0, min(self._held.values()) + shortest - time.monotonic())

    def _enqueue(self, wait: float) -> str:
        """Join the queue ('') or say why not: 'queue_full', or 'no_slot' when the calls that may finish within
        ``wait`` (by the shortest tenth of recent durations) are no more than the answers already waiting."""
        with self._lock:
            if self._waiting >= settings.LLM_QUEUE_MAX:
                return "queue_full"
            shortest = self._shortest_call()
            if shortest is not None:
                deadline = time.monotonic() + wait
                freeing = sum(1 for taken in self._held.values() if taken + shortest <= deadline)
                if freeing <= self._waiting:
                    return "no_slot"
            self._waiting += 1
            metrics.LLM_QUEUE_DEPTH.set(self._waiting)
            return ""

    def _dequeue(self) -> None:
        with self._lock:
            self._waiting -= 1
            metrics.LLM_QUEUE_DEPTH.set(self._waiting)

    async def _acquire(self, user_key) -> int:
        """The token of the slot taken; raises LLMBusy."""
        refused, token = self._try_take(user_key)
        if refused == "user_cap":
            limit = settings.LLM_MAX_IN_FLIGHT_PER_USER
            raise LLMBusy(f"busy: this user already has {limit} answers in progress", kind="user_cap")
        if not refused:
            return token
        wait = settings.LLM_QUEUE_WAIT_SECONDS
        refused_queue = self._enqueue(wait)
        if refused_queue == "no_slot":
            raise LLMBusy(f"busy: {settings.LLM_MAX_IN_FLIGHT} LLM calls in flight; none can finish within "
                          f"{wait:g} s for this answer", kind="cap")
        if refused_queue:
            raise LLMBusy(f"busy: {settings.LLM_MAX_IN_FLIGHT} LLM calls in flight and the queue is full",
                          kind="queue_full")
        try:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                await asyncio.sleep(POLL_SECONDS)
                refused, token = self._try_take(user_key)
                if not refused:
                    return token
        finally:
            self._dequeue()
        raise LLMBusy(
            f"busy: {settings.LLM_MAX_IN_FLIGHT} LLM calls in flight; no slot within "
            f"{settings.LLM_QUEUE_WAIT_SECONDS:g} s",
            kind=refused,
        )

    async def _acquire_logged(self, user_key) -> int:
        try:
            return await self._acquire(user_key)
        except LLMBusy as exc:
            metrics.LLM_CAP_REJECTIONS.labels(kind=exc.kind).inc()
            status = self.status()
            logger.warning(
                "llm cap reached",
                extra={"kind": exc.kind, "in_flight": status.in_flight, "waiting": status.waiting,
                       "cap": status.cap, "per_user_cap": status.per_user_cap},
            )
            raise

    @asynccontextmanager
    async def slot(self, *, user_key):
        """Hold one LLM slot for the body of the ``async with``; raises ``LLMBusy`` when none is free."""
        token = await self._acquire_logged(user_key)
        try:
            yield
        finally:
            self._release(user_key, token)

    def reserve(self, *, user_key) -> Reservation:
        """Start asking for a slot now (a task), while the caller does other work (the retrieval); enter the
        returned reservation where the slot is needed. Whoever reserves must enter or ``cancel`` it."""
        return Reservation(self, user_key)


class Reservation:
    """A slot being asked for in the background: ``async with`` waits for the answer (or raises ``LLMBusy``)
    and holds the slot for its body; ``cancel`` gives it up unused (the question failed before the LLM)."""

    def __init__(self, gate: LLMGate, user_key) -> None:
        self._gate = gate
        self._user_key = user_key
        self._task = asyncio.ensure_future(gate._acquire_logged(user_key))

    @property
    def granted(self) -> bool:
        """A slot is already held for this answer (the LLM capacity waits for its retrieval)."""
        return self._task.done() and not self._task.cancelled() and self._task.exception() is None

    @property
    def busy(self) -> bool:
        """Already known: no slot (the caller will give the busy answer)."""
        return self._task.done() and not self._task.cancelled() and isinstance(self._task.exception(), LLMBusy)

    async def __aenter__(self) -> Reservation:
        try:
            await asyncio.shield(self._task)  # raises LLMBusy when no slot came in time
        except asyncio.CancelledError:
            await self.cancel()  # the reader left while waiting: a slot taken meanwhile goes back
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._gate._release(self._user_key, self._task.result())

    async def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()
        try:
            token = await self._task
        except (asyncio.CancelledError, LLMBusy):
            return
        self._gate._release(self._user_key, token, used=False)  # taken but never used: hand it back


llm_gate = LLMGate()
