"""The cap on LLM calls in flight (per process, per user), its short queue and the busy answer."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync

from aihelper.chat.services.llm_gate import LLMBusy, LLMGate, llm_gate
from aihelper.chat.services.orchestrator import BUSY_NOTE, achat_answer
from aihelper.core import metrics
from audit.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def cap_of_one(settings):
    settings.LLM_MAX_IN_FLIGHT = 1
    settings.LLM_MAX_IN_FLIGHT_PER_USER = 1
    settings.LLM_QUEUE_MAX = 4
    settings.LLM_QUEUE_WAIT_SECONDS = 0.2


def _while_held(user_key, coroutine_factory, *, release_after: float | None = None):
    """Run ``coroutine_factory()`` while someone (``user_key``) holds an LLM slot of the process-wide gate."""

    async def scenario():
        held, done = asyncio.Event(), asyncio.Event()

        async def holder():
            async with llm_gate.slot(user_key=user_key):
                held.set()
                if release_after is None:
                    await done.wait()
                else:
                    await asyncio.sleep(release_after)

        task = asyncio.create_task(holder())
        await held.wait()
        try:
            started = time.perf_counter()
            result = await coroutine_factory()
            return result, time.perf_counter() - started
        finally:
            done.set()
            await task

    return async_to_sync(scenario)()


def _rejections(kind: str) -> float:
    return metrics.LLM_CAP_REJECTIONS.labels(kind=kind)._value.get()


def test_beyond_the_cap_the_busy_answer_comes_fast(user, other_user, library, recommend_all, fake_anthropic,
                                                  cap_of_one):
    before = _rejections("cap")
    answer, seconds = _while_held(other_user.pk, lambda: achat_answer(user=user, message="node disk is full"))
    assert seconds < 1.0, "no hang: the queue wait (0.2 s) and the retrieval only"
    assert answer.degraded and answer.answer_markdown.startswith(BUSY_NOTE.strip().split("\n")[0])
    assert "NodeDiskFull" in answer.answer_markdown and answer.solutions  # the retrieval-only answer
    log = AuditLog.objects.get(pk=answer.audit_log.pk)
    assert log.degraded and log.error.startswith("busy:")
    assert fake_anthropic.requests == [], "the model was not called"
    assert _rejections("cap") == before + 1
    assert llm_gate.status().in_flight == 0 and llm_gate.status().waiting == 0


def test_a_slot_freed_within_the_queue_wait_gives_a_full_answer(user, other_user, library, recommend_all,
                                                                fake_anthropic, cap_of_one, settings):
    settings.LLM_QUEUE_WAIT_SECONDS = 2.0
    answer, _ = _while_held(other_user.pk, lambda: achat_answer(user=user, message="node disk is full"),
                            release_after=0.3)
    assert not answer.degraded and len(fake_anthropic.requests) == 1


def test_one_user_cannot_take_the_whole_cap(user, library, recommend_all, fake_anthropic, cap_of_one, settings):
    settings.LLM_MAX_IN_FLIGHT = 10
    answer, seconds = _while_held(user.pk, lambda: achat_answer(user=user, message="node disk is full"))
    assert answer.degraded and "answers in progress" in AuditLog.objects.get(pk=answer.audit_log.pk).error
    assert seconds < 1.0 and fake_anthropic.requests == []


def test_a_full_queue_is_refused_at_once(settings):
    settings.LLM_MAX_IN_FLIGHT, settings.LLM_QUEUE_MAX, settings.LLM_QUEUE_WAIT_SECONDS = 1, 0, 5.0
    gate = LLMGate()

    async def scenario():
        async with gate.slot(user_key="a"):
            started = time.perf_counter()
            with pytest.raises(LLMBusy) as refused:
                async with gate.slot(user_key="b"):
                    pass
            return refused.value.kind, time.perf_counter() - started

    kind, seconds = async_to_sync(scenario)()
    assert kind == "queue_full" and seconds < 0.1
    assert gate.status().in_flight == 0


def test_queue_depth_is_counted_while_waiting(settings):
    settings.LLM_MAX_IN_FLIGHT, settings.LLM_QUEUE_MAX, settings.LLM_QUEUE_WAIT_SECONDS = 1, 5, 0.3
    gate = LLMGate()

    async def scenario():
        async with gate.slot(user_key="a"):
            waiters = [asyncio.create_task(gate.slot(user_key=f"w{i}").__aenter__()) for i in range(3)]
            await asyncio.sleep(0.1)
            depth = gate.status().waiting
            results = await asyncio.gather(*waiters, return_exceptions=True)
        return depth, results

    depth, results = async_to_sync(scenario)()
    assert depth == 3
    assert all(isinstance(result, LLMBusy) and result.kind == "cap" for result in results)
    assert gate.status().waiting == 0


def test_readyz_shows_the_cap_and_the_queue(client, settings):
    settings.LLM_MAX_IN_FLIGHT = 7
    llm = client.get("/readyz").json()["llm"]
    assert llm["cap"] == 7 and llm["in_flight"] == 0 and llm["waiting"] == 0
    assert llm["scope"] == "per worker process"
    assert "next_slot_in_seconds" in llm


def test_a_reservation_given_up_before_the_llm_hands_its_slot_back(settings):
    """The slot is asked for while the runbooks are retrieved; a question that fails there frees it."""
    settings.LLM_MAX_IN_FLIGHT, settings.LLM_QUEUE_MAX, settings.LLM_QUEUE_WAIT_SECONDS = 1, 5, 0.5
    gate = LLMGate()

    async def scenario():
        reservation = gate.reserve(user_key="a")
        await asyncio.sleep(0.05)
        taken = gate.status().in_flight
        await reservation.cancel()
        async with gate.slot(user_key="b"):  # free again at once
            return taken, gate.status().in_flight

    taken, in_flight = async_to_sync(scenario)()
    assert taken == 1 and in_flight == 1
    assert gate.status().in_flight == 0


def test_a_reservation_waiting_in_the_queue_can_be_given_up(settings):
    settings.LLM_MAX_IN_FLIGHT, settings.LLM_QUEUE_MAX, settings.LLM_QUEUE_WAIT_SECONDS = 1, 5, 5.0
    gate = LLMGate()

    async def scenario():
        async with gate.slot(user_key="a"):
            reservation = gate.reserve(user_key="b")
            await asyncio.sleep(0.1)
            waiting = gate.status().waiting
            started = time.perf_counter()
            await reservation.cancel()
            return waiting, time.perf_counter() - started

    waiting, seconds = async_to_sync(scenario)()
    assert waiting == 1 and seconds < 0.5, "given up at once, not after the 5 s queue wait"
    assert gate.status().in_flight == 0 and gate.status().waiting == 0


def test_the_queue_wait_runs_while_the_answer_is_prepared(settings):
    """Entering a reservation made earlier waits only for what is left of the queue wait."""
    settings.LLM_MAX_IN_FLIGHT, settings.LLM_QUEUE_MAX, settings.LLM_QUEUE_WAIT_SECONDS = 1, 5, 0.4
    gate = LLMGate()

    async def scenario():
        async with gate.slot(user_key="a"):
            reservation = gate.reserve(user_key="b")
            await asyncio.sleep(0.4)  # the retrieval takes as long as the queue wait
            started = time.perf_counter()
            with pytest.raises(LLMBusy):
                async with reservation:
                    pass
            return time.perf_counter() - started

    assert async_to_sync(scenario)() < 0.2
    assert gate.status().in_flight == 0 and gate.status().waiting == 0


async def _hold(gate: LLMGate, user_key: str, *, seconds: float) -> None:
    async with gate.slot(user_key=user_key):
        await asyncio.sleep(seconds)


def _history(gate: LLMGate, *, calls: int, seconds: float):
    """``calls`` finished calls of ``seconds`` each, held at once (so the history costs ``seconds``)."""

    async def scenario():
        await asyncio.gather(*(_hold(gate, f"history-{index}", seconds=seconds) for index in range(calls)))

    async_to_sync(scenario)()


def _cap_of_one_after_calls_of(settings, *, seconds: float, queue_wait: float) -> LLMGate:
    """A gate whose history is eight finished calls of ``seconds`` each, now with a cap of one slot."""
    settings.LLM_MAX_IN_FLIGHT, settings.LLM_MAX_IN_FLIGHT_PER_USER = 8, 1
    settings.LLM_QUEUE_MAX, settings.LLM_QUEUE_WAIT_SECONDS = 5, queue_wait
    gate = LLMGate()
    _history(gate, calls=8, seconds=seconds)
    settings.LLM_MAX_IN_FLIGHT = 1
    return gate


def test_with_no_slot_able_to_free_in_time_the_queue_is_skipped(settings):
    """Recent calls took >= 1 s and the one in flight has just started: waiting 0.3 s in the queue could not
    end in a slot, so the busy answer comes at once instead of after the wait."""
    settings.LLM_MAX_IN_FLIGHT, settings.LLM_MAX_IN_FLIGHT_PER_USER = 8, 1
    settings.LLM_QUEUE_MAX, settings.LLM_QUEUE_WAIT_SECONDS = 5, 0.3
    gate = LLMGate()
    assert gate.next_free_in() is None, "no history yet: nothing is assumed"
    _history(gate, calls=8, seconds=1.0)
    settings.LLM_MAX_IN_FLIGHT = 1

    async def scenario():
        async with gate.slot(user_key="a"):
            expected = gate.status().next_free_in
            started = time.perf_counter()
            with pytest.raises(LLMBusy) as refused:
                async with gate.slot(user_key="b"):
                    pass
            return expected, refused.value, time.perf_counter() - started

    expected, refused, seconds = async_to_sync(scenario)()
    assert 0.8 < expected < 1.2
    assert refused.kind == "cap" and "none can finish within 0.3 s for this answer" in refused.reason
    assert seconds < 0.1, "not after the 0.3 s queue wait"
    assert gate.status().in_flight == 0 and gate.status().waiting == 0


def test_a_call_about_to_finish_is_still_waited_for(settings):
    """Recent calls took ~0.5 s and the one in flight is 0.3 s old: a slot may free within the 0.5 s wait."""
    gate = _cap_of_one_after_calls_of(settings, seconds=0.5, queue_wait=0.5)

    async def scenario():
        task = asyncio.create_task(_hold(gate, "a", seconds=0.45))
        await asyncio.sleep(0.3)
        async with gate.slot(user_key="b"):
            got = gate.status().in_flight
        await task
        return got

    assert async_to_sync(scenario)() == 1, "the slot freed by the finished call was taken, no busy answer"


def test_slots_given_back_unused_do_not_count_as_calls(settings):
    """A question that failed before the LLM hands its slot back at once: that is not how long a call takes (it
    would make every slot look about to free)."""
    settings.LLM_MAX_IN_FLIGHT, settings.LLM_QUEUE_MAX, settings.LLM_QUEUE_WAIT_SECONDS = 1, 5, 0.5
    gate = LLMGate()

    async def scenario():
        for _ in range(10):
            reservation = gate.reserve(user_key="a")
            await asyncio.sleep(0)
            await reservation.cancel()
        async with gate.slot(user_key="a"):
            return gate.next_free_in()

    assert async_to_sync(scenario)() is None


def test_a_slot_about_to_free_goes_to_the_answer_already_waiting_the_next_gets_busy_at_once(settings):
    """One call may finish within the wait and one answer already waits for it: a second answer could only
    time out in the queue, so it gets the busy answer at once."""
    gate = _cap_of_one_after_calls_of(settings, seconds=0.5, queue_wait=0.5)

    async def first_in_line():
        async with gate.slot(user_key="b"):
            return "full answer"

    async def scenario():
        task = asyncio.create_task(_hold(gate, "a", seconds=0.45))
        await asyncio.sleep(0.3)
        waiting = asyncio.create_task(first_in_line())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        with pytest.raises(LLMBusy) as refused:
            async with gate.slot(user_key="c"):
                pass
        seconds = time.perf_counter() - started
        return await waiting, refused.value.kind, seconds, await task

    first, kind, seconds, _ = async_to_sync(scenario)()
    assert first == "full answer", "the answer already waiting got the freed slot"
    assert kind == "cap" and seconds < 0.1, "the next one did not sit out the 0.5 s wait"
    assert gate.status().in_flight == 0 and gate.status().waiting == 0
