"""What an answer presented, as typed values: the one reader and writer of ``AuditLog.ai_action_details``.

The JSON shape is documented in docs/data-model.md and read by SQL too (analytics, the click function of
migration 0005), so its keys never change here; Python code reads and writes it only through
``ActionDetails.from_json`` / ``ActionDetails.to_json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SOLUTION_TYPES = ("runbook", "manual")


def _frozen(value: Mapping | None) -> Mapping:
    return MappingProxyType(dict(value or {}))


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class PresentedSolution:
    """One recommended solution as the engineer saw it, at its rank (1 = first)."""

    rank: int
    id: str
    type: str = "runbook"
    slug: str = ""
    title: str = ""
    confidence: float = 0.0
    confidence_components: Mapping[str, float] = field(default_factory=dict)
    success_rate: float | None = None
    success_samples: int = 0
    can_execute: bool = False
    url: str = ""
    # True: kept from earlier in the conversation (a follow-up), not retrieved for this turn's own words.
    carried_over: bool = False
    # Runbook.version at answer time: the text the engineer was shown (0: recorded before versions).
    runbook_version: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", str(self.id))
        object.__setattr__(self, "confidence_components", _frozen(self.confidence_components))

    @property
    def is_runbook(self) -> bool:
        return self.type == "runbook"

    def matches(self, *, solution_id, solution_type: str) -> bool:
        return self.id == str(solution_id) and self.type == solution_type

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PresentedSolution:
        return cls(
            rank=int(data["rank"]),
            id=str(data["id"]),
            type=str(data.get("type") or "runbook"),
            slug=str(data.get("slug") or ""),
            title=str(data.get("title") or ""),
            confidence=float(data.get("confidence") or 0.0),
            confidence_components=data.get("confidence_components") or {},
            success_rate=_float_or_none(data.get("success_rate")),
            success_samples=int(data.get("success_samples") or 0),
            can_execute=bool(data.get("can_execute")),
            url=str(data.get("url") or ""),
            carried_over=bool(data.get("carried_over")),
            runbook_version=int(data.get("runbook_version") or 0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "type": self.type,
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "confidence": self.confidence,
            "confidence_components": dict(self.confidence_components),
            "success_rate": self.success_rate,
            "success_samples": self.success_samples,
            "can_execute": self.can_execute,
            "url": self.url,
            "carried_over": self.carried_over,
            "runbook_version": self.runbook_version,
        }


@dataclass(frozen=True)
class RetrievalSummary:
    """How the search behind an answer went (no query text: that is in ``AuditLog.query``)."""

    timings_ms: Mapping[str, float] = field(default_factory=dict)
    degraded: bool = False
    degraded_reason: str = ""
    query_truncated: bool = False
    candidates: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings_ms", _frozen(self.timings_ms))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RetrievalSummary:
        data = data or {}
        return cls(
            timings_ms=data.get("timings_ms") or {},
            degraded=bool(data.get("degraded")),
            degraded_reason=str(data.get("degraded_reason") or ""),
            query_truncated=bool(data.get("query_truncated")),
            candidates=int(data.get("candidates") or 0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "timings_ms": dict(self.timings_ms),
            "degraded": self.degraded,
            "degraded_reason": self.degraded_reason,
            "query_truncated": self.query_truncated,
            "candidates": self.candidates,
        }


TURN_KINDS = ("new", "continuation", "follow_up", "reference", "shift", "small_talk")


@dataclass(frozen=True)
class ConversationTurn:
    """How a chat turn used its conversation: the kind of turn and the query its search really ran."""

    kind: str = "new"  # one of TURN_KINDS
    effective_query: str = ""
    # Set for "reference" turns: the rank in the previous answer / step number the message pointed at.
    referenced_rank: int | None = None
    referenced_step: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ConversationTurn:
        data = data or {}
        rank, step = data.get("referenced_rank"), data.get("referenced_step")
        return cls(
            kind=str(data.get("kind") or "new"),
            effective_query=str(data.get("effective_query") or ""),
            referenced_rank=None if rank is None else int(rank),
            referenced_step=None if step is None else int(step),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "effective_query": self.effective_query,
            "referenced_rank": self.referenced_rank,
            "referenced_step": self.referenced_step,
        }


@dataclass(frozen=True)
class ActionDetails:
    """Everything an answer presented and how it was produced; stored as ``AuditLog.ai_action_details``."""

    solutions: tuple[PresentedSolution, ...] = ()
    presentation_strategy: str = ""
    threshold: float | None = None
    experiment: str = ""
    variant: str = ""
    retrieval: RetrievalSummary = field(default_factory=RetrievalSummary)
    links_removed: int = 0
    page_context: Mapping[str, Any] = field(default_factory=dict)
    prompt_messages: int = 0
    # Kinds of the secrets removed from the engineer's message and page context (never the values).
    redactions: tuple[str, ...] = ()
    conversation: ConversationTurn = field(default_factory=ConversationTurn)

    def __post_init__(self) -> None:
        object.__setattr__(self, "solutions", tuple(self.solutions))
        object.__setattr__(self, "redactions", tuple(self.redactions))
        object.__setattr__(self, "page_context", _frozen(self.page_context))

    @property
    def runbook_solutions(self) -> tuple[PresentedSolution, ...]:
        return tuple(solution for solution in self.solutions if solution.is_runbook)

    def solution(self, *, solution_id, solution_type: str) -> PresentedSolution | None:
        """The presented solution with this id and type, or None when it was not presented."""
        found = (s for s in self.solutions if s.matches(solution_id=solution_id, solution_type=solution_type))
        return next(found, None)

    def ranks(self) -> dict[str, int]:
        """{solution id: rank}: what answer rendering needs to tag the links it keeps."""
        return {solution.id: solution.rank for solution in self.solutions}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ActionDetails:
        data = data or {}
        prompt = data.get("prompt") or {}
        threshold = data.get("threshold")
        return cls(
            solutions=tuple(PresentedSolution.from_json(item) for item in data.get("solutions_presented") or ()),
            presentation_strategy=str(data.get("presentation_strategy") or ""),
            threshold=None if threshold is None else float(threshold),
            experiment=str(data.get("experiment") or ""),
            variant=str(data.get("variant") or ""),
            retrieval=RetrievalSummary.from_json(data.get("retrieval")),
            links_removed=int(data.get("links_removed") or 0),
            page_context=data.get("page_context") or {},
            prompt_messages=int(prompt.get("messages") or 0),
            redactions=tuple(str(kind) for kind in data.get("redactions") or ()),
            conversation=ConversationTurn.from_json(data.get("conversation")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "solutions_presented": [solution.to_json() for solution in self.solutions],
            "presentation_strategy": self.presentation_strategy,
            "threshold": self.threshold,
            # None, not "", when no experiment ran: the stored shape since the first audit log.
            "experiment": self.experiment or None,
            "variant": self.variant or None,
            "retrieval": self.retrieval.to_json(),
            "links_removed": self.links_removed,
            "page_context": dict(self.page_context),
            "prompt": {"messages": self.prompt_messages, "history_messages": max(0, self.prompt_messages - 1)},
            "redactions": list(self.redactions),
            "conversation": self.conversation.to_json(),
        }
