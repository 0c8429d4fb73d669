"""Read runbooks from JSON Lines files and Markdown directories and upsert them by slug.

JSON Lines: the public Prometheus-Operator corpus (``title``, steps as strings) or our richer shape (step objects,
``service``, ``category``, ``is_automated``, ``automation_ref``, ``allowed_groups``). Markdown: the upstream template
(front matter, ``# Title``, ``## Meaning`` / ``## Impact`` / ``## Diagnosis`` / ``## Mitigation``). Bodies are cleaned
by runbooks/bodies.py. Each record is upserted in its own savepoint (``services.runbook_upsert``): a bad one is
reported with its file and line, the rest are imported."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from markdown_it import MarkdownIt

from aihelper.core.api_limits import json_text_problem
from runbooks.bodies import runbook_body_fields, split_front_matter
from runbooks.models import STEP_MAX_CHARS, RunbookOrigin, alert_name_validator
from runbooks.services import runbook_upsert

STATUSES = ("created", "updated", "unchanged", "invalid")
TITLE_MAX_CHARS = 120
# First words that make a one-line step a shell command rather than prose.
COMMAND_WORDS = frozenset(
    "kubectl oc curl wget etcdctl promtool amtool helm docker crictl systemctl journalctl sudo cat ls df du "
    "grep jq watch export ssh top free iostat vmstat ip ping dig nslookup openssl mount umount lsblk "
    "smartctl mdadm ethtool ntpq chronyc timedatectl".split()
)
_CODE_HINT = re.compile(r"[{}\[\]|=]|\w\(")


class ImportAborted(Exception):
    """Raised inside the strict-mode transaction to roll back every record of the run."""


@dataclass
class RecordOutcome:
    source: str
    line: int
    slug: str
    status: str
    error: str = ""

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass
class ImportReport:
    outcomes: list[RecordOutcome] = field(default_factory=list)
    rolled_back: bool = False

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def invalid(self) -> list[RecordOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "invalid"]

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(status)} {status}" for status in STATUSES)
        suffix = " (strict: rolled back, nothing imported)" if self.rolled_back else ""
        return f"{counts}{suffix}"


@dataclass
class ParsedRecord:
    source: str
    line: int
    slug: str
    data: dict
    allowed_groups: list[str] | None = None
    error: str = ""


# --- steps ------------------------------------------------------------------------------------


def is_command(text: str) -> bool:
    """A step that was a fenced code block (multi-line) or reads like one shell/PromQL line."""
    stripped = text.strip()
    if not stripped:
        return False
    if "\n" in stripped or stripped.startswith("$ "):
        return True
    first = stripped.split()[0]
    if first in COMMAND_WORDS:
        return True
    prose = stripped.endswith((".", ":", "?", "!")) or " the " in f" {stripped.lower()} "
    return not prose and bool(_CODE_HINT.search(stripped)) and " " not in stripped.split("(")[0]


def _short_title(text: str) -> str:
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].strip()
    if len(first) > TITLE_MAX_CHARS:
        first = first[: TITLE_MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return first


def step_from_text(text: str) -> dict:
    """Convert a plain-text step to {title, detail, command}."""
    text = text.strip()[:STEP_MAX_CHARS]
    if is_command(text):
        command = text[2:] if text.startswith("$ ") else text
        first_line = command.split("\n", 1)[0].strip()
        return {"title": _short_title(f"Run {first_line}"), "detail": "", "command": command}
    title = _short_title(text)
    return {"title": title, "detail": "" if title == text else text, "command": ""}


def normalise_steps(steps) -> list:
    """Strings become step objects; objects are passed through (the model validates them)."""
    if not isinstance(steps, list):
        return steps
    return [step_from_text(step) if isinstance(step, str) else step for step in steps]


# --- JSON Lines -------------------------------------------------------------------------------

_JSON_FIELDS = {
    "display_title": "display_title",
    "description": "description",
    "tags": "tags",
    "body_markdown": "body_markdown",
    "service": "service",
    "category": "category",
    "is_automated": "is_automated",
    "automation_ref": "automation_ref",
    "enabled": "enabled",
}


# --- source_url and aliases -------------------------------------------------------------------


def _is_alert_name(value: str) -> bool:
    try:
        alert_name_validator(value)
    except ValidationError:
        return False
    return True


def _aliases_value(value) -> list[str] | None:
    """A record's ``aliases`` as a list of stripped names (one name or a list of them); None: not text."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    return list(dict.fromkeys(item.strip() for item in items if item.strip()))


def link_fields(data: dict, own: dict) -> str:
    """Fill ``source_url`` and ``aliases`` in ``data``: the record's own keys (``own``) win, else its front
    matter, which runbook_body_fields left in ``front_matter_extra``. Hugo's ``aliases`` are old page paths
    (``/kubememovercommit/``), not alert names: only entries that are alert names become aliases, the rest
    stay in ``front_matter_extra``. Returns an error message for the record ("" when none)."""
    extra = dict(data.get("front_matter_extra") or {})
    if "source_url" in own and own["source_url"] is not None:
        if not isinstance(own["source_url"], str):
            return "'source_url' must be an http(s) URL"
        data["source_url"] = own["source_url"].strip()
    elif isinstance(extra.get("source_url"), str) and extra["source_url"].strip().startswith(("http://", "https://")):
        data["source_url"] = extra.pop("source_url").strip()
    if "aliases" in own and own["aliases"] is not None:
        aliases = _aliases_value(own["aliases"])
        if aliases is None:
            return "'aliases' must be a list of alert names"
        data["aliases"] = aliases
    elif "aliases" in extra:
        named = _aliases_value(extra["aliases"]) or []
        names = [item for item in named if _is_alert_name(item)]
        if names:
            data["aliases"] = names
            rest = [item for item in named if item not in names]
            if rest:
                extra["aliases"] = rest
            else:
                del extra["aliases"]
    if "front_matter_extra" in data:
        data["front_matter_extra"] = extra
    return ""


def record_from_json(obj, *, source: str, line: int) -> ParsedRecord:
    """One JSON record as runbook data, or the reason it cannot be one (never an exception)."""
    if not isinstance(obj, dict):
        return ParsedRecord(source, line, "", {}, error="a record must be a JSON object")
    problem = json_text_problem(obj)  # NUL, a lone surrogate or 1e999 would only fail in the database
    if problem is not None:
        return ParsedRecord(source, line, str(obj.get("slug") or ""), {},
                            error=f"{problem.path}: {problem.message}")
    try:
        return _record_from_json(obj, source=source, line=line)
    except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong shape ("steps": "notalist")
        return ParsedRecord(source, line, str(obj.get("slug") or ""), {}, error=f"a field has the wrong shape: {exc}")


def _record_from_json(obj: dict, *, source: str, line: int) -> ParsedRecord:
    slug = obj.get("slug")
    if not isinstance(slug, str) or not slug.strip():
        return ParsedRecord(source, line, "", {}, error="'slug' is required")
    name = obj.get("name") or obj.get("title")
    if not isinstance(name, str) or not name.strip():
        return ParsedRecord(source, line, slug, {}, error="'title' is required")
    data: dict = {"name": name.strip(), "steps": normalise_steps(obj.get("steps", []))}
    for key, target in _JSON_FIELDS.items():
        if key in obj and obj[key] is not None:
            data[target] = obj[key]
    # Trimmed like the name: an export's trailing newline is not an invisible character (validate_visible_text).
    data.update({key: data[key].strip() for key in ("display_title", "service", "category")
                 if isinstance(data.get(key), str)})
    if isinstance(data.get("tags"), list):
        data["tags"] = [tag.strip() if isinstance(tag, str) else tag for tag in data["tags"]]
    groups = obj.get("allowed_groups")
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
        return ParsedRecord(source, line, slug, data, error="'allowed_groups' must be a list of group names")
    if isinstance(data.get("body_markdown"), str) and isinstance(data["steps"], list):
        try:
            data.update(runbook_body_fields(body=data["body_markdown"], steps=data["steps"], current=data))
        except ValueError as exc:
            return ParsedRecord(source, line, slug, data, error=f"body_markdown: {exc}")
    error = link_fields(data, obj)
    if error:
        return ParsedRecord(source, line, slug, data, error=error)
    return ParsedRecord(source, line, slug.strip(), data, allowed_groups=groups)


def read_jsonl(path: Path) -> Iterator[ParsedRecord]:
    """Each line's record; a line that is not UTF-8 or not JSON is an invalid record, the others are read."""
    with path.open("rb") as handle:
        for number, raw_bytes in enumerate(handle, start=1):
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield ParsedRecord(str(path), number, "", {}, error=f"not UTF-8 text (byte {exc.start + 1})")
                continue
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield ParsedRecord(str(path), number, "", {}, error=f"invalid JSON: {exc.msg}")
                continue
            except RecursionError:
                yield ParsedRecord(str(path), number, "", {}, error="invalid JSON: nested too deeply")
                continue
            yield record_from_json(obj, source=str(path), line=number)


# --- Markdown ---------------------------------------------------------------------------------

_markdown = MarkdownIt("commonmark")
_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)]*)\)")
_INLINE = re.compile(r"[*_`]+")
_NO_STEP_SECTIONS = {"meaning", "impact"}
_MARKDOWN_CONSUMED = {"name", "slug", "allowed_groups", "is_automated"}


def _plain(text: str) -> str:
    text = _LINK.sub(lambda m: m.group(1) or m.group(2), text)
    return " ".join(_INLINE.sub("", text).split())


def parse_markdown(text: str, *, slug: str, fallback_title: str) -> tuple[dict, dict]:
    """(data for runbook_upsert, front matter) from one Markdown runbook."""
    front, body = split_front_matter(text)
    tokens = _markdown.parse(body)
    title = ""
    section = ""
    first_paragraph = ""
    meaning_paragraph = ""
    steps: list[dict] = []
    last_paragraph = ""
    list_depth = 0
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "heading_open":
            heading = _plain(tokens[index + 1].content)
            if token.tag == "h1" and not title:
                title = heading
            elif token.tag == "h2":
                section = heading.lower()
                last_paragraph = ""
            index += 3
            continue
        if token.type in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif token.type == "inline" and tokens[index - 1].type == "paragraph_open":
            content = _plain(token.content)
            if content and not first_paragraph and not (content.startswith("image") and "http" in content):
                first_paragraph = content
            if section == "meaning" and not meaning_paragraph:
                meaning_paragraph = content
            if section and section not in _NO_STEP_SECTIONS and content:
                if list_depth == 1:
                    steps.append(step_from_text(content))
                elif list_depth > 1 and steps:
                    steps[-1]["detail"] = f"{steps[-1]['detail']}; {content}".strip("; ")[:STEP_MAX_CHARS]
                else:
                    last_paragraph = content
        elif token.type in ("fence", "code_block") and section and section not in _NO_STEP_SECTIONS:
            command = token.content.strip()[:STEP_MAX_CHARS]
            if command:
                lead = last_paragraph.rstrip(":")
                steps.append(
                    {
                        "title": _short_title(lead) if lead else _short_title(f"Run {command.splitlines()[0]}"),
                        "detail": "",
                        "command": command,
                    }
                )
                last_paragraph = ""
        index += 1
    name = str(front.get("name") or title or front.get("title") or fallback_title).strip()
    tags = front.get("tags") or []
    if not isinstance(tags, list):
        tags = [str(tags)]
    group = slug.split("/", 1)[0] if "/" in slug else ""
    tags = list(dict.fromkeys([group, *map(str, tags)] if group else list(map(str, tags))))
    data = {"name": name, "description": meaning_paragraph or first_paragraph, "tags": tags, "steps": steps}
    for key in ("service", "category", "automation_ref"):
        if key in front:
            data[key] = str(front[key])
    if "is_automated" in front:
        data["is_automated"] = bool(front["is_automated"])
    data.update(runbook_body_fields(body=text, steps=steps, current=data))
    # A Markdown file's own front matter decides these (read above and by _markdown_record).
    data["front_matter_extra"] = {
        key: value for key, value in data["front_matter_extra"].items() if key not in _MARKDOWN_CONSUMED
    }
    # The file is the whole runbook: no address or aliases in it means none (a re-import clears them).
    data.update(source_url="", aliases=[])
    link_fields(data, {})
    return data, front


def _error_line(exc: Exception) -> int:
    """The line of the file where reading failed: a YAML error's mark (its block starts on line 2, after
    the opening ``---``), the line of an undecodable byte, else 1."""
    if isinstance(exc, UnicodeDecodeError):
        return exc.object[: exc.start].count(b"\n") + 1
    mark = getattr(exc.__cause__, "problem_mark", None) or getattr(exc.__cause__, "context_mark", None)
    return mark.line + 2 if mark is not None else 1


MARKDOWN_MAX_BYTES = 1_000_000  # a runbook is text for an engineer; a bigger file is a mistake, not a runbook


def _markdown_record(path: Path, default_slug: str) -> ParsedRecord:
    try:
        data, front = parse_markdown(path.read_text(encoding="utf-8"), slug=default_slug, fallback_title=path.stem)
    except (ValueError, UnicodeDecodeError) as exc:
        return ParsedRecord(str(path), _error_line(exc), default_slug, {}, error=f"cannot parse: {exc}")
    groups = front.get("allowed_groups")
    if groups is not None and not isinstance(groups, list):
        groups = [str(groups)]
    return ParsedRecord(str(path), 1, str(front.get("slug") or default_slug), data, allowed_groups=groups)


def read_markdown_dir(root: Path) -> Iterator[ParsedRecord]:
    """Every ``*.md`` under ``root``; the slug is the relative path in lower case (``node/nodeclockskewdetected``)."""
    inside = root.resolve()
    for path in sorted(root.rglob("*.md")):
        if path.name.startswith("_") or path.name.lower() == "readme.md":
            continue
        slug = "/".join(path.relative_to(root).with_suffix("").parts).lower()
        if path.is_symlink() or not path.resolve().is_relative_to(inside):
            # A link in a repository could pull any readable file on this machine into a runbook.
            yield ParsedRecord(str(path), 1, slug, {}, error="cannot parse: a symbolic link is not read")
            continue
        if path.stat().st_size > MARKDOWN_MAX_BYTES:
            yield ParsedRecord(str(path), 1, slug, {}, error=f"cannot parse: larger than {MARKDOWN_MAX_BYTES} bytes")
            continue
        yield _markdown_record(path, slug)


# --- entry point ------------------------------------------------------------------------------


def read_sources(paths: Iterable[Path]) -> Iterator[ParsedRecord]:
    for path in paths:
        if path.is_dir():
            yield from read_markdown_dir(path)
        elif path.is_file() and path.suffix == ".md":
            if path.stat().st_size > MARKDOWN_MAX_BYTES:
                yield ParsedRecord(str(path), 1, path.stem.lower(), {},
                                   error=f"cannot parse: larger than {MARKDOWN_MAX_BYTES} bytes")
            else:
                yield _markdown_record(path, path.stem.lower())
        elif path.is_file():
            yield from read_jsonl(path)
        else:
            yield ParsedRecord(str(path), 0, "", {}, error="no such file or directory")


def validation_message(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{key}: {' '.join(messages)}" for key, messages in exc.message_dict.items())
    return " ".join(exc.messages)


def import_source_name(path: Path, source: str | None = None) -> str:
    """What ``origin_source`` records for runbooks read from ``path``: the ``--source`` name if given, else
    the absolute path (the same folder named two ways is one source)."""
    return source or str(path.resolve())


def runbooks_import(
    *, paths: Iterable[Path], strict: bool = False, on_record=None, source: str | None = None
) -> ImportReport:
    """Upsert every runbook found under ``paths``; with ``strict`` any invalid record rolls back all.

    Each runbook records where it came from: origin ``import``, ``origin_source`` from import_source_name.
    """
    report = ImportReport()
    try:
        with transaction.atomic():
            for path in paths:
                origin = {"origin": RunbookOrigin.IMPORT, "origin_source": import_source_name(path, source)}
                for record in read_sources([path]):
                    outcome = RecordOutcome(record.source, record.line, record.slug, "invalid", record.error)
                    if not record.error:
                        try:
                            with transaction.atomic():  # a refused record leaves the others' transaction usable
                                _, status = runbook_upsert(
                                    slug=record.slug, data={**record.data, **origin},
                                    allowed_groups=record.allowed_groups,
                                )
                            outcome.status = status
                        except ValidationError as exc:
                            outcome.error = validation_message(exc)
                        except DatabaseError as exc:  # e.g. a group name longer than the column
                            outcome.error = f"cannot be stored: {str(exc).splitlines()[0]}"
                    report.outcomes.append(outcome)
                    if on_record:
                        on_record(outcome)
            if strict and report.invalid:
                raise ImportAborted
    except ImportAborted:
        report.rolled_back = True
    return report
