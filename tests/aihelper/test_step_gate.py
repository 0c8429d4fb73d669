"""The gate in front of an answer's synchronous steps: bounded, and an answer's last step goes first."""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync

from aihelper.chat.services.sync_steps import BUSY, FINISHING, STARTING, StepGate


def test_a_waiting_finishing_step_goes_before_waiting_first_steps():
    gate = StepGate(1)
    order: list[str] = []

    async def step(name: str, *, finishing: bool):
        await gate.acquire(priority=lambda: FINISHING if finishing else STARTING)
        try:
            order.append(name)
            await asyncio.sleep(0.01)
        finally:
            gate.release()

    async def scenario():
        await gate.acquire(priority=lambda: STARTING)  # one step running
        tasks = [asyncio.create_task(step("new question 1", finishing=False))]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(step("new question 2", finishing=False)))
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(step("answer being written", finishing=True)))
        await asyncio.sleep(0.01)
        gate.release()
        await asyncio.gather(*tasks)

    async_to_sync(scenario)()
    assert order == ["answer being written", "new question 1", "new question 2"]


def test_a_step_cancelled_while_waiting_does_not_keep_a_place():
    gate = StepGate(1)

    async def scenario():
        await gate.acquire(priority=lambda: STARTING)
        waiter = asyncio.create_task(gate.acquire(priority=lambda: STARTING))
        await asyncio.sleep(0.01)
        assert gate.waiting == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        gate.release()
        # The place went back to the gate, not to the cancelled waiter: the next step runs at once.
        await asyncio.wait_for(gate.acquire(priority=lambda: STARTING), timeout=1)
        gate.release()
        return gate.waiting

    assert async_to_sync(scenario)() == 0


def test_at_most_slots_steps_run_at_once():
    gate = StepGate(2)
    running, peak = 0, 0

    async def step():
        nonlocal running, peak
        await gate.acquire(priority=lambda: STARTING)
        try:
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
        finally:
            gate.release()

    async def scenario():
        await asyncio.gather(*(step() for _ in range(8)))

    async_to_sync(scenario)()
    assert peak == 2


def test_a_question_found_busy_while_waiting_moves_ahead_of_questions_that_will_call_the_llm():
    """Its priority is asked when a place frees: the busy answer needs one more step, the others seconds."""
    gate = StepGate(1)
    order: list[str] = []
    known_busy = False

    async def step(name: str, priority):
        await gate.acquire(priority=priority)
        try:
            order.append(name)
        finally:
            gate.release()

    async def scenario():
        nonlocal known_busy
        await gate.acquire(priority=lambda: STARTING)
        first = asyncio.create_task(step("question with a slot", lambda: STARTING))
        await asyncio.sleep(0)
        later = asyncio.create_task(step("question beyond the cap", lambda: BUSY if known_busy else STARTING))
        await asyncio.sleep(0.01)
        known_busy = True  # its slot request was refused while it waited
        gate.release()
        await asyncio.gather(first, later)

    async_to_sync(scenario)()
    assert order == ["question beyond the cap", "question with a slot"]
