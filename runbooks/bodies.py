"""A runbook body as stored: its front matter taken out into fields, and what only repeats the steps removed.

Upstream runbooks start with a Hugo front-matter block (``---\\ntitle: ...\\nweight: 20\\n---``), then
``# AlertName`` and ``## Meaning`` / ``## Impact`` / ``## Diagnosis`` / ``## Mitigation``; the importer
already turns the Diagnosis and Mitigation content into ``steps``. Shown as the "full runbook", that block
rendered as a rule plus a "title: ..." heading and the steps appeared twice. So the stored body keeps only
what no other field holds:

- the front matter becomes fields (``front_matter_fields``); keys with no column are kept in
  ``Runbook.front_matter_extra`` so nothing of the source is lost;
- a leading ``# Heading`` that is the runbook's name is dropped (``name`` holds it);
- an ``##`` section is dropped only when every block in it (paragraph, list item, code block,
  sub-heading) is found word for word in the steps. A section holding anything more -- a note that is
  not a step, an image, a link's address, a sub-heading -- is kept whole, so no content is lost
  (docs/data-model.md).

Pure (PyYAML and the standard library, no Django): migration 0007 runs a frozen copy of these functions
on existing rows, so later changes here do not change what that migration did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import yaml

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(?:(.*?)\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_WORD = re.compile(r"\w+")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LIST_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,9}[.)])\s+")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# Front-matter keys filled into a column when the record left that column empty.
TEXT_KEYS = {
    "title": "display_title",
    "description": "description",
    "service": "service",
    "category": "category",
    "automation_ref": "automation_ref",
}


FRONT_MATTER_MAX_CHARS = 16384
# Column sizes (runbooks/models.py): a front-matter value that does not fit is kept in front_matter_extra.
COLUMN_MAX_CHARS = {"display_title": 200, "service": 100, "category": 100, "automation_ref": 300}
TAG_MAX_CHARS = 64


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without aliases: a few hundred bytes of nested aliases expand to billions of values
    ("billion laughs"), and front matter never needs them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not allowed in front matter")
        return super().compose_node(parent, index)


def _storable(value) -> bool:
    """Every text in it can be stored by PostgreSQL: no NUL, valid UTF-8 (no lone surrogate)."""
    if isinstance(value, dict):
        return all(_storable(key) and _storable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    return True


def split_front_matter(text: str) -> tuple[dict, str]:
    """({front matter}, body after it); ({}, text) when there is none, or when the block between the two
    ``---`` lines is not a mapping (a body may open with a horizontal rule). ValueError when it cannot be
    read: not YAML, nested too deep, aliases, or longer than FRONT_MATTER_MAX_CHARS."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    block = match.group(1) or ""
    if len(block) > FRONT_MATTER_MAX_CHARS:
        raise ValueError(f"front matter is longer than {FRONT_MATTER_MAX_CHARS} characters")
    try:
        loaded = yaml.load(block, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader without aliases
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"front matter is not valid YAML: {str(exc)[:200]}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        return {}, text
    # JSON-safe (dates become text) so a re-import compares equal to what the JSON column holds; PostgreSQL
    # stores neither NUL, nor a lone surrogate, nor an infinite or NaN number (YAML can spell all three).
    try:
        encoded = json.dumps({str(key): value for key, value in (loaded or {}).items()}, default=str,
                             allow_nan=False)
    except ValueError as exc:
        raise ValueError("front matter has a number that is not finite (.inf or .nan)") from exc
    front = json.loads(encoded)
    if not _storable(front):
        raise ValueError("front matter has a NUL character or a lone surrogate (\\0, \\ud800): not text")
    return front, text[match.end() :]


def _words(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _step_parts(steps: Sequence) -> list[str]:
    parts = []
    for step in steps:
        if isinstance(step, str):
            parts.append(step)
        elif isinstance(step, Mapping):
            parts.extend(str(step.get(key) or "") for key in ("title", "detail", "command"))
    return parts


def _step_words(steps: Sequence) -> str:
    return f" {_words(' '.join(_step_parts(steps)))} "


def _step_text(steps: Sequence) -> str:
    """Every step's text with runs of white space made one space (code blocks are matched against it)."""
    return " ".join(" ".join(_step_parts(steps)).split())


def _blocks(lines: Sequence[str]) -> list[tuple[bool, str]]:
    """(is code, text) of the paragraphs, list items, code blocks and sub-headings of a section."""
    blocks: list[tuple[bool, str]] = []
    current: list[str] = []
    fence = ""

    def flush(code: bool = False) -> None:
        if current:
            blocks.append((code, "\n".join(current)))
            current.clear()

    for line in lines:
        marker = _FENCE.match(line)
        if fence:
            if marker and marker.group(1) == fence:
                flush(code=True)
                fence = ""
            else:
                current.append(line)
        elif marker:
            flush()
            fence = marker.group(1)
        elif not line.strip() or _HEADING.match(line):
            flush()
            if line.strip():
                blocks.append((False, line))
        elif _LIST_ITEM.match(line):
            flush()
            current.append(_LIST_ITEM.sub("", line, count=1))
        else:
            current.append(line)
    flush(code=bool(fence))
    return blocks


def _covered(lines: Sequence[str], step_words: str, step_text: str) -> bool:
    """Every block is in the steps: prose word for word, code character for character (white space
    aside), so ``echo 1 > f`` is not taken for a step's ``echo 1 >> f``."""
    found = []
    for code, block in _blocks(lines):
        if code:
            text = " ".join(block.split())
            found.append(bool(text) and text in step_text)
        elif _words(block):
            found.append(f" {_words(block)} " in step_words)
    return bool(found) and all(found)


def _sections(lines: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) line ranges of the ``##`` sections (a section runs to the next # or ## heading)."""
    starts: list[tuple[int, int]] = []
    fence = ""
    for number, line in enumerate(lines):
        marker = _FENCE.match(line)
        if marker and (not fence or marker.group(1) == fence):
            fence = "" if fence else marker.group(1)
            continue
        heading = None if fence else _HEADING.match(line)
        if heading and len(heading.group(1)) <= 2:
            starts.append((number, len(heading.group(1))))
    ranges = []
    for index, (start, level) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(lines)
        if level == 2:
            ranges.append((start, end))
    return ranges


def body_without_repeats(body: str, *, steps: Sequence, name: str) -> str:
    """``body`` without a leading ``# name`` heading and without the sections the steps already hold."""
    lines = body.split("\n")
    drop: set[int] = set()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    heading = _HEADING.match(lines[first]) if first is not None else None
    if heading and len(heading.group(1)) == 1 and _words(heading.group(2)) == _words(name) and _words(name):
        drop.add(first)
    step_words, step_text = _step_words(steps), _step_text(steps)
    for start, end in _sections(lines):
        if _covered(lines[start + 1 : end], step_words, step_text):
            drop.update(range(start, end))
    if not drop:
        return body
    kept = "\n".join(line for number, line in enumerate(lines) if number not in drop)
    kept = re.sub(r"\n{3,}", "\n\n", kept).strip("\n")
    return f"{kept}\n" if kept else ""


def front_matter_fields(front: Mapping, *, current: Mapping) -> tuple[dict, dict]:
    """(column values to set, keys kept as ``front_matter_extra``) from front matter and the record's values.

    The record's own values win: front matter fills only empty text columns and adds missing tags; a
    value that differs from the record's own, or does not fit its column, is kept in the extra keys.
    Every other key (Hugo's ``weight`` and ``aliases``, or ``slug`` / ``allowed_groups`` /
    ``is_automated`` written in a JSON record's body) is kept, not applied: access and automation
    come from the record's own fields.
    """
    updates: dict = {}
    extra: dict = {}
    for key, value in front.items():
        column = TEXT_KEYS.get(key)
        if column and isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value).strip()
            limit = COLUMN_MAX_CHARS.get(column)
            if not current.get(column) and (limit is None or len(text) <= limit):
                updates[column] = text
            elif text != str(current.get(column) or "").strip():
                extra[key] = value  # the record's own value wins, or it does not fit: kept, not lost
        elif key == "tags" and isinstance(value, list | str):
            tags = list(current.get("tags") or [])
            named = [str(tag) for tag in (value if isinstance(value, list) else [value])]
            added = [tag for tag in named if tag not in tags and len(tag) <= TAG_MAX_CHARS]
            if added:
                updates["tags"] = tags + added
            if any(len(tag) > TAG_MAX_CHARS for tag in named):
                extra[key] = value
        else:
            extra[key] = value
    return updates, extra


def runbook_body_fields(*, body: str, steps: Sequence, current: Mapping) -> dict:
    """The fields a raw body yields: ``body_markdown`` cleaned, front matter in columns / ``front_matter_extra``.

    ``current`` holds the record's other values (``name``, ``description``, ``tags``, ...). ValueError
    when the front matter cannot be read.
    """
    front, rest = split_front_matter(body)
    updates, extra = front_matter_fields(front, current=current)
    name = str(current.get("name") or "")
    return {**updates, "front_matter_extra": extra, "body_markdown": body_without_repeats(rest, steps=steps, name=name)}
