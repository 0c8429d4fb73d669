"""What a chat message says about the conversation it is in, from its words alone (no database).

``turn_cues`` reads a message for references to the previous answer ("the second one", "step 3"), small
talk ("thanks, that fixed it"), words that point back ("it", "that"), words that announce a new problem
("different issue", "also") and how much retrievable content it has. ``runbook_part`` picks the part of a
runbook a follow-up asks about (a step or a section). Both are used by aihelper/chat/conversation.py and
explained in docs/retrieval.md, "Conversations".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from runbooks.lexical import lexical_terms

_ORDINALS = {
    "first": 1, "1st": 1, "one": 1, "second": 2, "2nd": 2, "two": 2, "third": 3, "3rd": 3, "three": 3,
    "fourth": 4, "4th": 4, "four": 4, "fifth": 5, "5th": 5, "five": 5, "sixth": 6, "6th": 6, "six": 6,
    "seventh": 7, "7th": 7, "seven": 7, "last": -1, "final": -1,
}
_ORDINAL = r"(first|1st|second|2nd|third|3rd|last|other|top|final)"
_THING = r"(?:one|runbook|option|link|suggestion|result|alternative|choice|match|recommendation)"
_RANK_WORDS = re.compile(rf"\b(?:the\s+|that\s+)?{_ORDINAL}\s+{_THING}\b", re.IGNORECASE)
_RANK_NUMBER = re.compile(r"(?:\b(?:option|runbook|number|no\.?|result)\s*#?|#)\s*([1-9])\b", re.IGNORECASE)
_STEP_NUMBER = re.compile(r"\b(?:step|command)\s*(?:#|no\.?|number)?\s*(\d{1,2})\b", re.IGNORECASE)
_STEP_WORDS = re.compile(
    r"\b(first|1st|second|2nd|third|3rd|fourth|4th|fifth|5th|sixth|6th|seventh|7th|last|final)\s+"
    r"(?:step|command|thing)\b",
    re.IGNORECASE,
)
_SAME_RUNBOOK = re.compile(r"\b(?:that|this|the same|your|the)\s+(?:runbook|one|doc|playbook|page)\b", re.IGNORECASE)
_POINTING = re.compile(r"\b(it|its|it's|this|that|these|those|them|they|same|there|here)\b", re.IGNORECASE)
_SMALL_TALK = re.compile(
    r"^\W*(?:ok(?:ay)?|k|thanks?(?: you)?(?: (?:so much|a lot))?|thx|ty|cheers|great|perfect|nice|cool|awesome|"
    r"got it|lol|haha|one sec(?:ond)?|brb|on it|will do|hmm+|sure|yes|yep|yeah|no|nope|right|understood|"
    r"that (?:fixed|solved|worked|did) it|it worked|fixed|solved|resolved|all good|sounds good|good|"
    r"checking|looking|let me (?:check|look|try)|trying (?:it|that) now|done)\b",
    re.IGNORECASE,
)
# What may follow an acknowledgement in small talk: more acknowledgement words, never a question or a problem.
_SMALL_TALK_REST = re.compile(
    r"^[\s\W]*(?:(?:ok(?:ay)?|thanks?|thank you|so much|a lot|thx|ty|cheers|great|perfect|nice|cool|awesome|got it|"
    r"lol|haha|sure|yes|yep|yeah|right|understood|that|it|fixed|solved|worked|did|resolved|all|good|sounds|"
    r"will do|on it|done|man|mate|again|now|looks|works|for|the|help|really|very|much)\b[\s\W]*)*$",
    re.IGNORECASE,
)
_NEW_PROBLEM = re.compile(
    r"\b(?:different|another|new|unrelated|separate|other|second|next)\s+(?:issue|problem|alert|incident|thing|"
    r"topic|question|page|fire)\b|(?:^|[.;:!?]\s)\W*(?:(?:ok(?:ay)?|right|cool|thanks|done|fixed)\W+)?"
    r"(?:also|additionally|meanwhile|now|btw|by the way|unrelated|next up|moving on|separately)\b"
    r"|\b(?:now|also)\s+(?:we|i|there|the)\b|\[firing",
    re.IGNORECASE,
)

_ASKS_ABOUT = re.compile(
    r"^\W*(?:how|can|could|should|shall|what|which|why|who|whom|when|where|is|are|does|do|did|will|would|"
    r"any|and|but|so|then|ok so|okay so|what if|is it|do i|should i|can i)\b",
    re.IGNORECASE,
)
_GENERIC = frozenset(
    """how can could should would will what which why who when where do does did i we you me my our us there
    here then now so just also still again any some more quick quickly fast first next fix fixed solve safe
    safely ok okay thanks thank please help need want know check checked look try tried work works worked
    mean means happen happens happening problem issue thing stuff sure yes no not doesn don isn t s up out
    about after before if else wrong right way best mitigation mitigate quickest step steps command commands
    run running do doing owner own owns team prod production""".split()
)
# Ruling something out: a clause that says a thing is fine ("pods are Running", "logs look clean", "nodes are all
# Ready") with no word of a problem in it ("Running but not Ready" is a problem), or that a problem is absent ("no
# crashloop", "no OOM kills"; but "no space left", "no healthy upstream" are problems). Clauses end at punctuation
# and at "but", "and", "though", "while", "except".
_CLAUSE_BREAK = re.compile(
    r"[,.;:!?()]+|\b(?:but|and|though|although|while|whereas|yet|however|except|besides|unless|apart from|"
    r"other than)\b",
    re.IGNORECASE,
)
_HEALTHY = re.compile(
    r"\b(?:fine|healthy|normal|clean|ready|green|works|working|stable|alive|responding|reachable)\b"
    # "Running" as a state ("pods are Running", "all Running"), not the verb ("running out of memory").
    r"|\b(?:is|are|'re|was|were|all|still|now|back)\s+(?:all\s+|still\s+)?running\b(?!\s+(?:out|low|dry|for|over|"
    r"behind|hot|slow|forever|at))",
    re.IGNORECASE,
)
_PROBLEM_WORD = (
    r"(?:fail\w*|error\w*|errs|down|crash\w*|flap\w*|stuck|slow\w*|timeouts?|refus\w*|reject\w*|denied|broken|"
    r"lost|drop\w*|unhealthy|notready|degraded|oom\w*|kill\w*|restart\w*|exception\w*|alerts?|spikes?|evict\w*|"
    r"throttl\w*|warnings?|panic\w*|leaks?|lag|pressure|pending|exhaust\w*|expir\w*|unreachable|low|dry|forever)"
)
_PROBLEM = re.compile(
    rf"\b(?:no|not|never|nothing|none|cannot|can't|isn't|aren't|won't|doesn't|don't|didn't|wasn't|weren't|"
    rf"stopped|still|keeps?|high|full|missing|red|zero|{_PROBLEM_WORD})\b",
    re.IGNORECASE,
)
_NO_PROBLEM = re.compile(rf"\b(?:no|without)\s+(?:[\w-]+\s+){{0,2}}?{_PROBLEM_WORD}\b", re.IGNORECASE)
_HEALTH_WORDS = frozenset(
    "fine healthy normal clean runn running ready green work works working stable alive respond responding "
    "reachable available succeed no zero all look looks".split()
)
_OWNER = re.compile(r"\b(?:who\s+owns|owner|owning\s+team|which\s+team|escalate|on-?call\s+for)\b", re.IGNORECASE)
SMALL_TALK_MAX_WORDS = 8


@dataclass(frozen=True)
class TurnCues:
    words: int
    content_terms: frozenset[str]  # stemmed words that could retrieve something ("evict", "redis")
    rank: int | None = None  # "the second one" -> 2 (-1: the last; 0: "the other one")
    step: int | None = None  # "step 3" -> 3 (-1: the last step)
    same_runbook: bool = False  # "that runbook", "this one"
    small_talk: bool = False
    pointing: bool = False  # "it", "this", "that": the message leans on what came before
    asks: bool = False  # starts like a question or a continuation ("how", "can I", "and")
    new_problem: bool = False  # "different issue", "also ...", a pasted "[FIRING" alert
    owner: bool = False  # "who owns this?"
    ruled_out: frozenset[str] = frozenset()  # terms of the clauses that say a thing is fine ("pods are Running")
    affirmed: frozenset[str] = frozenset()  # terms of the other clauses

    @property
    def references(self) -> bool:
        return self.rank is not None or self.step is not None or self.same_runbook


def _ordinal(word: str) -> int:
    word = word.lower()
    if word == "other":
        return 0
    if word == "top":
        return 1
    return _ORDINALS.get(word, 1)


def _content(text: str) -> frozenset[str]:
    return frozenset(term for term in lexical_terms(text) if term not in _GENERIC and len(term) > 1)


def _ruling_out(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The content terms of the clauses that rule something out, and of the rest."""
    ruled, affirmed = set(), set()
    for clause in _CLAUSE_BREAK.split(text):
        clause = clause or ""
        terms = _content(clause)
        if _NO_PROBLEM.search(clause) or (_HEALTHY.search(clause) and not _PROBLEM.search(clause)):
            ruled |= terms - _HEALTH_WORDS
        else:
            affirmed |= terms
    return frozenset(ruled), frozenset(affirmed)


def turn_cues(message: str) -> TurnCues:
    text = " ".join(message.split())
    words = re.findall(r"[\w'-]+", text)
    terms = _content(text)
    ruled_out, affirmed = _ruling_out(text)
    rank = None
    if match := _RANK_WORDS.search(text):
        rank = _ordinal(match.group(1))
    elif match := _RANK_NUMBER.search(text):
        rank = int(match.group(1))
    step = None
    if match := _STEP_NUMBER.search(text):
        step = int(match.group(1))
    elif match := _STEP_WORDS.search(text):
        step = _ordinal(match.group(1))
    small_talk = (
        bool(_SMALL_TALK.match(text)) and len(words) <= SMALL_TALK_MAX_WORDS and len(terms) <= 2
        and not text.rstrip().endswith("?") and not _NEW_PROBLEM.search(text)
        and not (_STEP_NUMBER.search(text) or _STEP_WORDS.search(text) or _RANK_WORDS.search(text))
        and (bool(_SMALL_TALK_REST.match(text)) or len(words) <= 3)
    )
    return TurnCues(
        words=len(words),
        content_terms=terms,
        rank=rank,
        step=step,
        same_runbook=bool(_SAME_RUNBOOK.search(text)),
        small_talk=small_talk,
        pointing=bool(_POINTING.search(text)),
        asks=bool(_ASKS_ABOUT.match(text)) or text.endswith("?"),
        new_problem=bool(_NEW_PROBLEM.search(text)),
        owner=bool(_OWNER.search(text)),
        ruled_out=ruled_out,
        affirmed=affirmed,
    )


@dataclass(frozen=True)
class RunbookPart:
    """The part of a runbook a question is about: a step (1-based ``step``) or a body section."""

    heading: str
    text: str
    step: int | None = None


_HEADING = re.compile(r"^(#{2,4})[ \t]+([^\n]*)$", re.MULTILINE)  # linear: no nested or overlapping quantifiers
SECTION_MAX_CHARS = 1200


def _sections(body: str) -> list[tuple[str, str]]:
    matches = list(_HEADING.finditer(body or ""))
    sections = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        content = body[match.end():end].strip()
        heading = match.group(2).rstrip(" \t#").strip()
        if content and heading:
            sections.append((heading, content))
    return sections


_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)", re.MULTILINE)


def fenced_safely(text: str) -> str:
    """Runbook Markdown cut or quoted into an answer: a code fence it leaves open is closed, so nothing the
    answer says after it ends up inside a code block."""
    fences = _FENCE.findall(text)
    return text + "\n" + fences[-1] if len(fences) % 2 else text


def _step_part(steps: Sequence[dict], number: int) -> RunbookPart:
    step = steps[number - 1]
    lines = [fenced_safely(str(step.get("detail") or "").strip())]
    if step.get("command"):
        lines.append("```\n" + str(step["command"]).strip().replace("```", "'''") + "\n```")
    title = " ".join(str(step.get("title") or "").split())
    return RunbookPart(heading=f"Step {number}: {title}", text="\n\n".join(line for line in lines if line),
                       step=number)


def _overlap(terms: frozenset[str], text: str) -> int:
    return len(terms & lexical_terms(text))


_MITIGATION = re.compile(r"\b(?:fix|mitigat\w*|quick\w*|resolv\w*|solv\w*|stop|recover\w*|remed\w*)\b", re.IGNORECASE)
_DIAGNOSIS = re.compile(r"\b(?:check|look|diagnos\w*|investigat\w*|cause|why|confirm|verify|see)\b", re.IGNORECASE)


def runbook_part(
    *, message: str, cues: TurnCues, steps: Sequence[dict], body: str
) -> RunbookPart | None:
    """The step the message names, else the step or section sharing most words with it, else the section a
    'fix it' or 'what to check' question is about; None when nothing in particular is asked about."""
    steps = [step for step in steps if isinstance(step, dict)]
    if cues.step is not None and steps:
        number = len(steps) if cues.step == -1 else cues.step
        if 1 <= number <= len(steps):
            return _step_part(steps, number)
    scored: list[tuple[int, int, RunbookPart]] = []
    for number, step in enumerate(steps, start=1):
        text = " ".join(str(step.get(key) or "") for key in ("title", "detail", "command"))
        scored.append((_overlap(cues.content_terms, text), -number, _step_part(steps, number)))
    sections = _sections(body)
    for index, (heading, content) in enumerate(sections):
        clipped = content if len(content) <= SECTION_MAX_CHARS else content[: SECTION_MAX_CHARS - 1] + "…"
        clipped = fenced_safely(clipped)
        scored.append((_overlap(cues.content_terms, heading + " " + content), -index - 100,
                       RunbookPart(heading=heading, text=clipped)))
    best = max(scored, key=lambda item: (item[0], item[1]), default=None)
    if best is not None and best[0] > 0:
        return best[2]
    wanted = _MITIGATION if _MITIGATION.search(message) else _DIAGNOSIS if _DIAGNOSIS.search(message) else None
    if wanted is not None:
        for heading, content in sections:
            if wanted.search(heading):
                return RunbookPart(heading=heading, text=fenced_safely(content[:SECTION_MAX_CHARS]))
        if wanted is _DIAGNOSIS and steps:
            return _step_part(steps, 1)
    return None
