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


def split_front_matter(text: str) -> tuple[dict, str]:
    """({front matter}, body after it); ({}, text) when there is none. ValueError when it is not a mapping."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        loaded = yaml.safe_load(match.group(1) or "")
    except yaml.YAMLError as exc:
        raise ValueError(f"front matter is not valid YAML: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ValueError("front matter must be a mapping of 'key: value' lines")
    # JSON-safe (dates become text) so a re-import compares equal to what the JSON column holds.
    front = json.loads(json.dumps({str(key): value for key, value in (loaded or {}).items()}, default=str))
    return front, text[match.end() :]


def _words(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _step_words(steps: Sequence) -> str:
    parts = []
    for step in steps:
        if isinstance(step, str):
            parts.append(step)
        elif isinstance(step, Mapping):
            parts.extend(str(step.get(key) or "") for key in ("title", "detail", "command"))
    return f" {_words(' '.join(parts))} "


def _blocks(lines: Sequence[str]) -> list[str]:
    """Paragraphs, list items, code blocks and sub-headings of a section, as text."""
    blocks: list[str] = []
    current: list[str] = []
    fence = ""

    def flush() -> None:
        if current:
            blocks.append("\n".join(current))
            current.clear()

    for line in lines:
        marker = _FENCE.match(line)
        if fence:
            if marker and marker.group(1) == fence:
                flush()
                fence = ""
            else:
                current.append(line)
        elif marker:
            flush()
            fence = marker.group(1)
        elif not line.strip() or _HEADING.match(line):
            flush()
            if line.strip():
                blocks.append(line)
        elif _LIST_ITEM.match(line):
            flush()
            current.append(_LIST_ITEM.sub("", line, count=1))
        else:
            current.append(line)
    flush()
    return blocks


def _covered(lines: Sequence[str], step_words: str) -> bool:
    blocks = [_words(block) for block in _blocks(lines)]
    blocks = [block for block in blocks if block]
    return bool(blocks) and all(f" {block} " in step_words for block in blocks)


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
    step_words = _step_words(steps)
    for start, end in _sections(lines):
        if _covered(lines[start + 1 : end], step_words):
            drop.update(range(start, end))
    if not drop:
        return body
    kept = "\n".join(line for number, line in enumerate(lines) if number not in drop)
    kept = re.sub(r"\n{3,}", "\n\n", kept).strip("\n")
    return f"{kept}\n" if kept else ""


def front_matter_fields(front: Mapping, *, current: Mapping) -> tuple[dict, dict]:
    """(column values to set, keys kept as ``front_matter_extra``) from front matter and the record's values.

    The record's own values win: front matter fills only empty text columns and adds missing tags.
    Every other key (Hugo's ``weight`` and ``aliases``, or ``slug`` / ``allowed_groups`` /
    ``is_automated`` written in a JSON record's body) is kept, not applied: access and automation
    come from the record's own fields.
    """
    updates: dict = {}
    extra: dict = {}
    for key, value in front.items():
        column = TEXT_KEYS.get(key)
        if column and isinstance(value, str | int | float) and not isinstance(value, bool):
            if not current.get(column):
                updates[column] = str(value).strip()
        elif key == "tags" and isinstance(value, list | str):
            tags = list(current.get("tags") or [])
            added = [str(tag) for tag in (value if isinstance(value, list) else [value]) if str(tag) not in tags]
            if added:
                updates["tags"] = tags + added
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
