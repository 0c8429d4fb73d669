"""A chat turn searched with its conversation (docs/retrieval.md, "Conversations").

One search per turn in the common case: the message's own words, with the runbooks already in play (those
the last answers presented) scored against it too (``runbook_search(extra_ids=...)``, which only fetches
runbooks the user may see now). Then, from the message's cues (aihelper/chat/turns.py) and those scores:

- a reference to the previous answer ("the second one", "step 3", "that runbook") puts that runbook first;
- a message whose own best runbook is not in play is a topic shift when a small logistic model says so
  (``shift_probability``: the new runbook's confidence, the message's cues, how much of its alert name the
  message says, and its score lead over the runbooks in play); then the new runbooks are presented and the
  answer says so;
- a follow-up or small talk keeps the runbooks in play (``carried_over``), each with the better of its
  confidence for this message and its last shown confidence decayed by ``CARRY_DECAY`` per turn; the runbook
  under discussion stays recommended whatever its confidence, the others in play down to ``SHIFT_FLOOR`` (as
  uncertain matches below the threshold);
- with nothing in play, a message that finds nothing alone is searched again with the earlier messages
  (newest first), the only case with a second search.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from aihelper.chat.retrieval import runbooks_find
from aihelper.chat.selectors import PastTurn, stored_runbook_id
from aihelper.chat.turns import RunbookPart, TurnCues, runbook_part, turn_cues
from audit.details import ConversationTurn, PresentedSolution
from runbooks.calibration import presentation_strategy
from runbooks.lexical import title_coverage
from runbooks.search import SearchConfig, SearchOutcome, SearchResult

CARRY_DECAY = 0.9  # a carried runbook's confidence, per turn since it was shown
# Fitted on the fit part of benchmarks/data/conversations.jsonl by `benchmarks/conversations.py --fit`
# (L2 0.01; the holdout part is never used): intercept, then the weights of SHIFT_FEATURES.
# The confidence of the message's own best runbook ("new"), the message's cues, how much of new's alert name the
# message says, and new's ranking-score lead over the runbook in play that this message scores best.
SHIFT_FEATURES = ("new_confidence", "new_problem", "pointing", "asks", "content", "named", "new_title", "score_lead")
SHIFT_WEIGHTS = (-3.68, 0.52, 1.90, -1.13, 0.27, 1.90, 0.02, 0.99, 0.72)
SHIFT_THRESHOLD = 0.4  # shift when the probability is at least this (best balanced accuracy on the fit part)
SHIFT_FLOOR = 0.2  # runbooks in play are shown from here on (as uncertain matches)
SHIFT_NEW_FLOOR = 0.15  # a shift's new runbook needs this confidence, and is shown from here on
# A guard beside the model: a message whose own best runbook is this sure while the runbooks in play score
# below SHIFT_SURE_IN_PLAY for it is a new problem unless it asks about "it" (the model, fitted on our hard
# near-neighbour data, weighs confidence lightly; on that data the guard changes no decision).
SHIFT_SURE = 0.8
SHIFT_SURE_IN_PLAY = 0.2
CONTENT_TERMS_FULL = 12
CONTEXT_QUERIES = 3  # earlier messages added when a message finds nothing alone
CONTEXT_QUERY_CHARS = 1500


@dataclass(frozen=True)
class TurnSearch:
    outcome: SearchOutcome  # the results to present, ranked 1..n, with their strategy
    turn: ConversationTurn
    carried: frozenset[str]  # ids of runbooks carried over from the conversation
    part: RunbookPart | None = None  # the part of the first runbook the message asks about
    previous_title: str = ""  # shift: the runbook the conversation was about before


def _in_play(past: Sequence[PastTurn]) -> tuple[tuple[PresentedSolution, ...], int]:
    """The runbooks of the most recent answer that presented any, and how many turns ago (1 = last)."""
    for age, turn in enumerate(past, start=1):
        if turn.solutions:
            return turn.solutions, age
    return (), 0


def _reranked(
    outcome: SearchOutcome, results: Sequence[SearchResult], config: SearchConfig, lenient: Collection[str] = (),
    lenient_floor: float = SHIFT_FLOOR, focus: str | None = None,
) -> SearchOutcome:
    """Results ranked 1..n in the given order; recommended from the threshold on, or from ``lenient_floor`` for
    the ``lenient`` ids (runbooks in play, a shift's new runbook), and the ``focus`` (the runbook under
    discussion, carried) whatever its confidence: the conversation is still about it. The strategy by the
    config's rules over the confidences highest first, so a recommendation below the threshold is presented
    as uncertain."""

    def floor(result: SearchResult) -> float:
        if str(result.runbook.pk) == focus:
            return 0.0
        return min(config.threshold, lenient_floor) if str(result.runbook.pk) in lenient else config.threshold

    ranked = tuple(
        replace(result, rank=rank, recommended=rank <= config.max_recommended and result.confidence >= floor(result))
        for rank, result in enumerate(results, start=1)
    )
    shown = sorted((result.confidence for result in ranked if result.recommended), reverse=True)
    return replace(outcome, results=ranked, strategy=presentation_strategy(shown, config))


def shift_features(*, cues: TurnCues, top: SearchResult, topic: SearchResult | None) -> tuple[float, ...]:
    """The model's inputs, in SHIFT_FEATURES order (benchmarks/conversations.py fits on the same function);
    ``topic`` is the runbook in play (other than ``top``) that this message's search scores best."""
    new, old = top.components, (topic.components if topic is not None else {})
    return (
        top.confidence,
        float(cues.new_problem),
        float(cues.pointing),
        float(cues.asks),
        min(len(cues.content_terms), CONTENT_TERMS_FULL) / CONTENT_TERMS_FULL,
        float(bool(new.get("named"))),
        new.get("title", 0.0),
        new.get("score", 0.0) - old.get("score", 0.0),
    )


def shift_probability(features: Sequence[float]) -> float:
    logit = SHIFT_WEIGHTS[0] + sum(weight * value for weight, value in zip(SHIFT_WEIGHTS[1:], features, strict=True))
    return 1.0 / (1.0 + math.exp(-logit))


def rules_out(cues: TurnCues, result: SearchResult) -> bool:
    """The message says this runbook's problem is not the one: its alert name is covered more by the clauses
    that rule something out ("no crashloop", "nodes are all Ready") than by the rest of the message."""
    if not cues.ruled_out:
        return False
    ruled = title_coverage(result.runbook.name, set(cues.ruled_out))
    return ruled > 0 and ruled > title_coverage(result.runbook.name, set(cues.affirmed))


def _is_shift(*, cues: TurnCues, top: SearchResult | None, in_play: Sequence[SearchResult]) -> bool:
    """``in_play``: this message's results for the runbooks in play, other than ``top``."""
    if top is None or top.confidence < SHIFT_NEW_FLOOR or rules_out(cues, top):
        return False
    in_play_best = max((result.confidence for result in in_play), default=0.0)
    if top.confidence >= SHIFT_SURE and in_play_best < SHIFT_SURE_IN_PLAY and not (cues.asks and cues.pointing):
        return True
    topic = max(in_play, key=lambda result: result.components.get("score", 0.0), default=None)
    return shift_probability(shift_features(cues=cues, top=top, topic=topic)) >= SHIFT_THRESHOLD


def _referenced(
    cues: TurnCues, last: Sequence[PresentedSolution], visible: Collection[str]
) -> PresentedSolution | None:
    """The solution of the previous answer at the rank the message names, if the user may still see it."""
    if cues.rank is None or not last:
        return None
    ordered = sorted(last, key=lambda solution: solution.rank)
    if cues.rank == 0:  # "the other one": the one that was not first, when there were exactly two
        found = ordered[1] if len(ordered) == 2 else None
    elif cues.rank == -1:
        found = ordered[-1]
    else:
        found = next((solution for solution in ordered if solution.rank == cues.rank), None)
    return found if found is not None and found.id in visible else None


def _carry(
    *, outcome: SearchOutcome, in_play: Sequence[PresentedSolution], age: int, first: str | None,
    config: SearchConfig, cues: TurnCues,
) -> tuple[list[SearchResult], frozenset[str]]:
    """The runbooks in play (``first`` leading), then anything this message found on its own merits; besides
    ``first``, none whose problem the message rules out."""
    by_id = {str(result.runbook.pk): result for result in outcome.results}
    kept: list[tuple[float, SearchResult]] = []
    carried: set[str] = set()
    for solution in in_play:
        result = by_id.get(solution.id)
        if result is None:  # the user may no longer see it: it leaves the conversation
            continue
        if solution.id != first and rules_out(cues, result):  # "no crashloop": not that one, then
            continue
        remembered = solution.confidence * CARRY_DECAY**age
        if remembered > result.confidence:
            carried.add(solution.id)
            result = replace(result, confidence=round(remembered, 4))
        kept.append((1.0 if solution.id == first else 0.0, result))
    kept.sort(key=lambda item: (-item[0], -item[1].confidence))
    results = [result for _, result in kept]
    ids = {str(result.runbook.pk) for result in results}
    results += [
        result for result in outcome.results
        if str(result.runbook.pk) not in ids and result.confidence >= config.threshold and not rules_out(cues, result)
    ]
    return results, frozenset(carried)


def _context_query(message: str, past: Sequence[PastTurn]) -> str:
    text = " ".join([message, *(turn.query for turn in past[:CONTEXT_QUERIES])])
    return text[:CONTEXT_QUERY_CHARS]


def conversation_search(*, message: str, user, config: SearchConfig, past: Sequence[PastTurn]) -> TurnSearch:
    """Search this turn in its conversation; ``past`` is the session's earlier exchanges, newest first."""
    cues = turn_cues(message)
    in_play, age = _in_play(past)
    last = past[0].solutions if past else ()
    extra = [pk for pk in map(stored_runbook_id, dict.fromkeys(solution.id for solution in [*in_play, *last])) if pk]
    outcome = runbooks_find(query=message, user=user, limit=config.max_recommended, config=config, extra_ids=extra)
    if not past:
        return TurnSearch(outcome=outcome, turn=ConversationTurn(kind="new", effective_query=outcome.query),
                          carried=frozenset())
    visible = {str(result.runbook.pk): result for result in outcome.results}
    in_play = tuple(solution for solution in in_play if solution.id in visible)
    referenced = _referenced(cues, last, visible)
    top = outcome.results[0] if outcome.results else None
    turn = ConversationTurn(kind="follow_up", effective_query=outcome.query)

    if referenced is not None:
        turn = replace(turn, kind="reference", referenced_rank=referenced.rank, referenced_step=cues.step)
        focus = referenced
        in_play = (referenced, *(solution for solution in in_play if solution.id != referenced.id))
    elif in_play and not cues.small_talk and top is not None and str(top.runbook.pk) != in_play[0].id and _is_shift(
        cues=cues, top=top, in_play=[visible[item.id] for item in in_play if item.id != str(top.runbook.pk)],
    ):
        # The message's own best runbook is not the one under discussion (it may have been shown below it).
        # The new problem's runbooks; its best one below the threshold is still shown as an uncertain match (the
        # strategy says so) rather than leaving the engineer with the old topic's runbook; the others need the
        # threshold as always.
        outcome = _reranked(outcome, outcome.results[: config.max_recommended], config, lenient={str(top.runbook.pk)},
                            lenient_floor=SHIFT_NEW_FLOOR)
        return TurnSearch(outcome=outcome, turn=replace(turn, kind="shift"), carried=frozenset(),
                          previous_title=in_play[0].title)
    elif not in_play:
        if not outcome.recommended and not cues.small_talk and not cues.new_problem:
            widened = runbooks_find(query=_context_query(message, past), user=user,
                                    limit=config.max_recommended, config=config)
            if widened.recommended:
                return TurnSearch(outcome=widened, carried=frozenset(),
                                  turn=replace(turn, effective_query=widened.query))
        outcome = _reranked(outcome, outcome.results[: config.max_recommended], config)
        return TurnSearch(outcome=outcome, turn=replace(turn, kind="new"), carried=frozenset())
    else:
        focus = in_play[0]
        if cues.small_talk:
            turn = replace(turn, kind="small_talk")
        elif cues.step is not None or cues.same_runbook:
            turn = replace(turn, kind="reference", referenced_step=cues.step)
        elif top is not None and str(top.runbook.pk) == focus.id and top.recommended:
            turn = replace(turn, kind="continuation")

    results, carried = _carry(outcome=outcome, in_play=in_play, age=age if referenced is None else 1,
                              first=focus.id, config=config, cues=cues)
    lenient = {solution.id for solution in in_play}
    outcome = _reranked(outcome, results[: max(config.max_recommended, 1)], config, lenient=lenient, focus=focus.id)
    first = outcome.recommended[0].runbook if outcome.recommended else None
    part = None
    if first is not None and not cues.small_talk:
        part = runbook_part(message=message, cues=cues, steps=first.steps or (), body=first.body_markdown or "")
    return TurnSearch(outcome=outcome, turn=turn, carried=carried, part=part)
