"""A readable difference between two runbook versions: field by field, and steps as rows (added, removed,
moved, changed), for people reading the history in the admin (templates/admin/runbooks/version.html)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from runbooks.models import Runbook
from runbooks.versions import VERSIONED_FIELDS

STEP_PARTS = ("title", "detail", "command")
# Shown as whole lines changed (- / +) rather than "before → after".
LONG_TEXT_FIELDS = {"description", "body_markdown"}
EXTRA_LABELS = {"owner_group": "Owning group", "allowed_groups": "Allowed groups"}


def field_label(name: str) -> str:
    if name in EXTRA_LABELS:
        return EXTRA_LABELS[name]
    label = str(Runbook._meta.get_field(name).verbose_name)
    return label[:1].upper() + label[1:]


def _shown(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "(none)"
    if value in (None, ""):
        return "(empty)"
    return str(value)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "added" | "removed" | "same"
    text: str

    @property
    def sign(self) -> str:
        return {"added": "+", "removed": "−"}.get(self.kind, " ")


@dataclass(frozen=True)
class FieldChange:
    name: str
    label: str
    before: str
    after: str
    lines: tuple[DiffLine, ...] = ()  # for long text: the lines that changed, with one line of context


@dataclass(frozen=True)
class StepChange:
    kind: str  # "added" | "removed" | "changed" | "moved"
    before_position: int | None  # 1-based
    after_position: int | None
    title: str
    parts: tuple[FieldChange, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> str:
        if self.kind == "added":
            return f"Step {self.after_position} added"
        if self.kind == "removed":
            return f"Step {self.before_position} removed"
        if self.kind == "moved":
            return f"Step moved from position {self.before_position} to {self.after_position}"
        where = (
            f"Step {self.after_position}"
            if self.before_position == self.after_position
            else f"Step {self.before_position} (now {self.after_position})"
        )
        return f"{where} changed"


def text_lines(before: str, after: str) -> tuple[DiffLine, ...]:
    kinds = {"+": "added", "-": "removed", " ": "same"}
    lines = []
    for line in difflib.unified_diff((before or "").splitlines(), (after or "").splitlines(), n=1, lineterm=""):
        if line.startswith(("---", "+++", "@@")):
            continue
        lines.append(DiffLine(kinds.get(line[:1], "same"), line[1:]))
    return tuple(lines)


def _step(value) -> dict:
    if isinstance(value, Mapping):
        return {part: str(value.get(part) or "") for part in STEP_PARTS}
    return {"title": str(value), "detail": "", "command": ""}


def _step_parts(before: dict, after: dict) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(
            part,
            part.capitalize(),
            before[part],
            after[part],
            text_lines(before[part], after[part]) if part != "title" else (),
        )
        for part in STEP_PARTS
        if before[part] != after[part]
    )


def step_changes(before: Sequence, after: Sequence) -> list[StepChange]:
    """What happened to the steps: identical steps that changed position are "moved", steps in place whose
    text changed are "changed" (paired in order), the rest added or removed."""
    old = [_step(step) for step in before or []]
    new = [_step(step) for step in after or []]
    keys_old = [tuple(step.values()) for step in old]
    keys_new = [tuple(step.values()) for step in new]
    changes: list[StepChange] = []
    removed: list[int] = []
    added: list[int] = []
    matcher = difflib.SequenceMatcher(a=keys_old, b=keys_new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        removed.extend(range(i1, i2))
        added.extend(range(j1, j2))
    for i in list(removed):
        j = next((j for j in added if keys_new[j] == keys_old[i]), None)
        if j is not None:
            changes.append(StepChange("moved", i + 1, j + 1, new[j]["title"]))
            removed.remove(i)
            added.remove(j)
    for i, j in zip(list(removed), list(added), strict=False):
        changes.append(StepChange("changed", i + 1, j + 1, new[j]["title"], _step_parts(old[i], new[j])))
    paired = min(len(removed), len(added))
    changes += [StepChange("removed", i + 1, None, old[i]["title"]) for i in removed[paired:]]
    changes += [StepChange("added", None, j + 1, new[j]["title"]) for j in added[paired:]]
    return sorted(changes, key=lambda change: (change.after_position or change.before_position or 0, change.kind))


def field_changes(before: Mapping, after: Mapping) -> list[FieldChange]:
    """Every versioned field but the steps whose value differs between two snapshots."""
    changes = []
    for name in VERSIONED_FIELDS:
        if name == "steps" or before.get(name) == after.get(name):
            continue
        old, new = before.get(name), after.get(name)
        lines = text_lines(str(old or ""), str(new or "")) if name in LONG_TEXT_FIELDS else ()
        changes.append(FieldChange(name, field_label(name), _shown(old), _shown(new), lines))
    return changes
