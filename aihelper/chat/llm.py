"""LLM providers behind one small Protocol, chosen by settings.LLM_PROVIDER.

``astream(prompt)`` is an async iterator of text deltas ending with exactly one ``LLMReply`` (full text,
usage, latency): waiting for the model holds no thread. Any provider failure is raised as ``LLMError``
with a short reason; the orchestrator turns it into the degraded, retrieval-only answer. Cancelling the
consuming task (the client went away) closes the HTTP stream, so the model stops generating.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Protocol

import anthropic
from django.conf import settings

from aihelper.chat.prompts import Prompt, RunbookContext
from aihelper.chat.turns import turn_cues


@dataclass(frozen=True)
class LLMReply:
    text: str
    provider: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: int | None = None


class LLMError(Exception):
    """The provider could not produce an answer (after its retries). ``reason`` is for the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LLMProvider(Protocol):
    name: str
    model: str

    def astream(self, *, prompt: Prompt) -> AsyncIterator[str | LLMReply]: ...


# --- Offline: a deterministic answer from the runbooks themselves -----------------------------


def _runbook_link(runbook: RunbookContext) -> str:
    # A bracket in a title must not end the link text early and turn the rest into another link.
    title = runbook.solution.title.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"[{title}](/runbooks/{runbook.solution.id}/)"


def _runbook_facts(runbook: RunbookContext) -> str:
    solution = runbook.solution
    facts = [f"confidence {solution.confidence:.0%}"]
    if solution.success_rate is not None and solution.success_samples:
        facts.append(f"{solution.success_rate:.0%} success over {solution.success_samples} runs")
    else:
        facts.append("no recorded runs yet")
    restricted = "restricted: you may not run this automated runbook (its page says who may)"
    facts.append("you may execute it" if solution.can_execute else restricted)
    return ", ".join(facts)


def _first_steps(runbook: RunbookContext, count: int = 3) -> list[str]:
    lines = []
    for number, step in enumerate([s for s in runbook.steps if isinstance(s, dict)][:count], start=1):
        line = f"{number}. {' '.join(str(step.get('title', '')).split())}"
        command = " ".join(str(step.get("command") or "").split()).replace("`", "'")
        if command:
            line += f": `{command}`"
        lines.append(line)
    return lines


def _why(runbook: RunbookContext) -> str:
    description = " ".join(runbook.description.split())
    return description if len(description) <= 240 else description[:239] + "…"


_FIXED = re.compile(r"\b(?:fixed|solved|resolved|worked|works now|all good|did it)\b", re.IGNORECASE)
_NOT = re.compile(r"\b(?:not|no|still|never)\b|n't\b", re.IGNORECASE)
CONTINUING_KINDS = ("follow_up", "continuation", "reference", "small_talk")


def _continuing_answer(prompt: Prompt) -> str:
    """A follow-up about the runbook under discussion: the part it asks about, not the whole list again."""
    first, others = prompt.runbooks[0], prompt.runbooks[1:]
    cues = turn_cues(prompt.question)
    carried = " (from earlier in this conversation)" if first.solution.carried_over else ""
    if prompt.turn.kind == "small_talk":
        fixed = _FIXED.search(prompt.question) and not _NOT.search(prompt.question)
        opening = (
            "Good to hear it is fixed. If you ran the runbook, record the outcome on its execution page so the "
            "next engineer sees it worked." if fixed else "Take your time."
        )
        return f"{opening}\n\nStill open in this conversation: {_runbook_link(first)}{carried}."
    parts = [f"About {_runbook_link(first)}{carried}:", f"*{_runbook_facts(first)}*"]
    if cues.owner:
        owners = ", ".join(f"{label}: {value}" for label, value in (("service", first.service),
                                                                  ("category", first.category)) if value)
        parts.append(f"Owning service and category — {owners}. The runbook page names who may run it."
                     if owners else "The runbook does not name an owner; its page says who may run it.")
    if first.part is not None:
        parts.append(f"#### {first.part.heading}\n\n{first.part.text}")
    elif not cues.owner:
        steps = _first_steps(first, count=3)
        parts.append("First steps:\n\n" + "\n".join(steps) if steps else f"Why it matches: {_why(first)}")
    if others:
        parts.append("Also in play: " + ", ".join(_runbook_link(runbook) for runbook in others) + ".")
    parts.append("Open the runbook for every step; nothing has been executed.")
    return "\n\n".join(parts)


def retrieval_answer(*, prompt: Prompt) -> str:
    """The answer built from retrieval alone: the offline provider and the degraded mode both use it."""
    runbooks = prompt.runbooks
    if runbooks and prompt.strategy != "no_solutions" and prompt.turn.kind in CONTINUING_KINDS and (
        runbooks[0].solution.carried_over or prompt.turn.kind != "follow_up"
    ):
        return _continuing_answer(prompt)
    if prompt.strategy == "no_solutions" or not runbooks:
        return (
            "**No matching runbook.** None of the runbooks you can see matches this problem closely enough "
            "to recommend.\n\n"
            "- Add the alert name, the affected service and the exact error message, then ask again.\n"
            "- Search the runbook library directly if you know what you are looking for.\n"
            "- If this is a new kind of incident, escalate to the owning team and consider writing a runbook "
            "afterwards."
        )
    intro = {
        "single_solution": "One runbook matches this problem:",
        "primary_plus_one": "Start with the first runbook; the second is an alternative if it does not fit:",
        "multiple_options": "Several runbooks match about equally well; compare them and pick the one that fits:",
        "experimental_options": (
            "**These matches are uncertain.** Check that a runbook really fits your situation before acting:"
        ),
    }.get(prompt.strategy, "These runbooks match:")
    parts = [intro]
    if prompt.turn.kind == "shift" and prompt.previous_title:
        title = prompt.previous_title.replace("*", "")
        parts.insert(0, f"**New topic.** This looks like a different problem from *{title}*.")
    for runbook in runbooks:
        label = ""
        if prompt.strategy == "primary_plus_one":
            label = "Recommended: " if runbook.solution.rank == runbooks[0].solution.rank else "Alternative: "
        block = [f"### {label}{_runbook_link(runbook)}", f"*{_runbook_facts(runbook)}*"]
        if _why(runbook):
            block.append(f"Why it matches: {_why(runbook)}")
        steps = _first_steps(runbook, count=3 if runbook.solution.rank == runbooks[0].solution.rank else 2)
        if steps:
            block.append("First steps:\n\n" + "\n".join(steps))
        parts.append("\n\n".join(block))
    parts.append("Open a runbook for every step; nothing has been executed.")
    return "\n\n".join(parts)


class OfflineProvider:
    name = "offline"
    model = ""

    def stream(self, *, prompt: Prompt) -> Iterator[str | LLMReply]:
        started = time.perf_counter()
        text = retrieval_answer(prompt=prompt)
        yield text
        yield LLMReply(
            text=text, provider=self.name, model=self.model, latency_ms=int((time.perf_counter() - started) * 1000)
        )

    async def astream(self, *, prompt: Prompt) -> AsyncIterator[str | LLMReply]:
        for chunk in self.stream(prompt=prompt):
            yield chunk


# --- Anthropic Messages API ------------------------------------------------------------------


# One client (and connection pool) per event loop and configuration: an async connection pool belongs to the
# loop that opened it. Under the ASGI server that is one client per worker process; a synchronous caller
# (tests, WSGI) runs each answer in a loop of its own, whose client goes away with it.
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _anthropic_client(api_key: str, base_url: str | None, timeout: float, max_retries: int) -> anthropic.AsyncAnthropic:
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (api_key, base_url, timeout, max_retries)
    if key not in per_loop:
        per_loop[key] = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
    return per_loop[key]


class AnthropicProvider:
    name = "anthropic"

    def __init__(self) -> None:
        self.model = settings.ANTHROPIC_MODEL
        self.max_tokens = settings.ANTHROPIC_MAX_TOKENS
        self.timeout = settings.ANTHROPIC_TIMEOUT
        self.max_retries = settings.ANTHROPIC_MAX_RETRIES

    async def astream(self, *, prompt: Prompt) -> AsyncIterator[str | LLMReply]:
        started = time.perf_counter()
        # The SDK timeout bounds each read; this bounds a reply that trickles in forever.
        deadline = time.monotonic() + self.timeout * 4
        client = _anthropic_client(settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL, self.timeout,
                                   self.max_retries)
        parts: list[str] = []
        model, usage, stop_reason, stopped = self.model, {}, None, False
        try:
            # The raw event stream, not the SDK's ``messages.stream()`` helper: that one also rebuilds a typed
            # snapshot of the whole message after every delta, which was most of a worker's event-loop time
            # with 32 answers streaming (docs/benchmarks.md "LLM concurrency").
            stream = await client.messages.create(
                model=self.model, max_tokens=self.max_tokens, system=prompt.system, messages=prompt.messages,
                stream=True,
            )
            async with stream:
                async for event in stream:
                    if time.monotonic() > deadline:
                        raise LLMError("timeout: the reply took too long")
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if event.delta.text:
                            parts.append(event.delta.text)
                            yield event.delta.text
                    elif event.type == "message_start":
                        model = event.message.model or model
                        usage["input_tokens"] = event.message.usage.input_tokens
                        usage["output_tokens"] = event.message.usage.output_tokens
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason
                        usage["output_tokens"] = event.usage.output_tokens
                    elif event.type == "message_stop":
                        stopped = True
            if not stopped or stop_reason is None:
                raise LLMError("malformed reply: the stream ended before message_stop (truncated)")
        except LLMError:
            raise
        except anthropic.APIStatusError as exc:
            raise LLMError(f"http {exc.status_code}: {type(exc).__name__}") from exc
        except anthropic.APITimeoutError as exc:
            raise LLMError("timeout: no reply within the time limit") from exc
        except anthropic.APIConnectionError as exc:
            raise LLMError(f"connection error: {exc}") from exc
        except (anthropic.AnthropicError, AssertionError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LLMError(f"malformed reply: {type(exc).__name__}: {str(exc)[:200]}") from exc
        text = "".join(parts)
        if not text.strip():
            raise LLMError("malformed reply: no text in the answer")
        yield LLMReply(
            text=text,
            provider=self.name,
            model=model,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            latency_ms=int((time.perf_counter() - started) * 1000),
        )


def llm_provider_get() -> LLMProvider:
    """``auto``: Anthropic when a key is set, else offline. ``anthropic`` without a key is offline too."""
    if settings.LLM_PROVIDER == "offline" or not settings.ANTHROPIC_API_KEY:
        return OfflineProvider()
    return AnthropicProvider()
