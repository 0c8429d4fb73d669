"""The runbook editor's form (runbooks/authoring.py): fields with messages in words, steps as rows.

Steps arrive as three parallel lists (``step_title``, ``step_detail``, ``step_command``) in the order of
the rows on the page, so reordering rows (mouse or keyboard) is just their order in the POST; rows left
wholly empty are dropped. A metadata block (``---`` front matter) pasted at the top of the Markdown is
read into the fields it names (runbooks/bodies.py) and never stored as content.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django import forms
from django.contrib.auth.models import Group

from runbooks.bodies import front_matter_fields, split_front_matter
from runbooks.importers import link_fields
from runbooks.models import (
    BODY_MAX_CHARS,
    DESCRIPTION_MAX_CHARS,
    MAX_ALIASES,
    STEP_KEYS,
    STEP_MAX_CHARS,
    Runbook,
    RunbookStatus,
    alert_name_validator,
    slug_validator,
    source_url_validator,
    validate_visible_text,
)

MAX_STEPS = 100
TAG_MAX_CHARS = 64


def aliases_from_text(text: str) -> list[str]:
    """Comma-separated alert names as a list (order kept, repeats dropped); ValidationError naming the first
    one that is not an alert name. Shared by the editor and the admin."""
    names = list(dict.fromkeys(name.strip() for name in (text or "").split(",") if name.strip()))
    for name in names:
        try:
            alert_name_validator(name)
        except forms.ValidationError:
            raise forms.ValidationError(
                f"“{name[:40]}” is not an alert name: use letters, digits, '_', ':', '.' and '-' (at most 200), "
                "separated by commas."
            ) from None
    if len(names) > MAX_ALIASES:
        raise forms.ValidationError(f"A runbook answers at most {MAX_ALIASES} alert names.")
    return names


class AliasesField(forms.CharField):
    """Alert names typed as one comma-separated line, cleaned to a list."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value):
        return aliases_from_text(super().to_python(value))


def source_url_field() -> forms.URLField:
    return forms.URLField(
        max_length=500,
        required=False,
        assume_scheme="https",
        validators=[source_url_validator],
        label="Published at (URL)",
        help_text="Where this runbook is published. An alert whose runbook_url points here is linked to it.",
        error_messages={"invalid": "Give the address where the runbook is published: an http(s) URL."},
    )


def aliases_field() -> AliasesField:
    return AliasesField(
        required=False,
        max_length=4000,
        label="Alert names it answers",
        help_text="Other alert names this runbook is for, separated by commas, e.g. KubernetesPodCrashLooping.",
    )
REVIEW_MAX_DAYS = 3650


@dataclass
class StepRow:
    """One row of the steps editor as typed, with a message per field that is wrong."""

    title: str = ""
    detail: str = ""
    command: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.title.strip() or self.detail.strip() or self.command.strip())

    def as_step(self) -> dict:
        return {"title": self.title.strip(), "detail": self.detail.strip(), "command": self.command.strip("\n")}


def step_rows_from_post(data) -> list[StepRow]:
    titles, details, commands = (data.getlist(f"step_{key}") for key in STEP_KEYS)
    count = max(len(titles), len(details), len(commands))
    pad = [""] * count
    return [
        StepRow(title, detail, command)
        for title, detail, command in zip(
            (titles + pad)[:count], (details + pad)[:count], (commands + pad)[:count], strict=True
        )
    ]


def step_rows_from_steps(steps) -> list[StepRow]:
    return [
        StepRow(str(step.get("title", "")), str(step.get("detail", "")), str(step.get("command", "")))
        for step in steps or []
        if isinstance(step, dict)
    ]


def validate_step_rows(rows: list[StepRow]) -> list[StepRow]:
    """Rows with a message on each field that is wrong; wholly empty rows dropped (the rest keep their order)."""
    kept = [row for row in rows if not row.empty]
    for number, row in enumerate(kept, start=1):
        if not row.title.strip():
            row.errors["title"] = f"Give step {number} a title: what the engineer does, in a few words."
        for key in STEP_KEYS:
            if len(getattr(row, key)) > STEP_MAX_CHARS:
                row.errors[key] = f"Step {number}'s {key} is too long: at most {STEP_MAX_CHARS} characters."
            elif "\x00" in getattr(row, key):
                row.errors[key] = f"Step {number}'s {key} has a NUL character (\\0): remove it."
    return kept


def stale_version_message(current: int) -> str:
    return (f"Someone saved version {current} while you were editing. Your text is kept below: "
            "compare it with the version history, then save again.")


class RunbookForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        validators=[validate_visible_text],
        label="Name",
        help_text="The alert name engineers search for, e.g. KubePodCrashLooping.",
        error_messages={"required": "Give the runbook a name: the alert it answers."},
    )
    slug = forms.CharField(
        max_length=200,
        label="Address (slug)",
        validators=[slug_validator],
        help_text="Group and name, e.g. kubernetes/kubepodcrashlooping. Cannot be changed here later.",
        error_messages={"required": "Give the runbook an address, e.g. kubernetes/kubepodcrashlooping."},
    )
    display_title = forms.CharField(max_length=200, required=False, label="Title for people",
                                    validators=[validate_visible_text])
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="What the alert means",
        max_length=DESCRIPTION_MAX_CHARS,
    )
    tags = forms.CharField(required=False, label="Tags", help_text="Separated by commas.", max_length=2000)
    service = forms.CharField(max_length=100, required=False, label="Service", validators=[validate_visible_text])
    category = forms.CharField(max_length=100, required=False, label="Category", validators=[validate_visible_text])
    aliases = aliases_field()
    source_url = source_url_field()
    body_markdown = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "class": "mono"}),
        label="More from the runbook (Markdown)",
        max_length=BODY_MAX_CHARS,
    )
    status = forms.ChoiceField(choices=RunbookStatus.choices, initial=RunbookStatus.ACTIVE, label="State")
    owner_group = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"), required=False, label="Owning group", empty_label="No owning group"
    )
    review_interval_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=REVIEW_MAX_DAYS,
        label="Review every (days)",
        error_messages={
            "invalid": "Write the review interval as a whole number of days, e.g. 90.",
            "min_value": "The review interval is at least 1 day (leave it empty for no reviews).",
            "max_value": f"The review interval is at most {REVIEW_MAX_DAYS} days.",
        },
    )
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, runbook: Runbook | None = None, staff: bool = True, **kwargs):
        self.runbook = runbook
        super().__init__(*args, **kwargs)
        # A member of the owning group may not hand the runbook away (or lock the others out): staff only.
        self.fields["owner_group"].disabled = not staff
        if runbook is not None:
            # runbooks/authoring.py fills the other initial values; these two are read from the runbook here.
            self.initial.setdefault("aliases", list(runbook.aliases or []))
            self.initial.setdefault("source_url", runbook.source_url)
            self.fields["slug"].required = False
            self.fields["slug"].disabled = True
        # Parsed now, not in clean(): whatever else is wrong, the rows typed are shown again as typed.
        self.step_rows: list[StepRow] = step_rows_from_post(self.data) if self.is_bound else []
        self.front_matter_keys: list[str] = []

    def now_at_version(self, current: int) -> None:
        """After a refused stale save the page carries the stored version: the engineer compares, and a
        deliberate second save goes through (instead of being refused again for the version they already saw)."""
        self.data = self.data.copy()
        self.data["version"] = str(current)

    def clean_slug(self) -> str:
        if self.runbook is not None:
            return self.runbook.slug
        slug = self.cleaned_data["slug"].strip()
        if Runbook.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A runbook already has this address: choose another one.")
        return slug

    def clean_tags(self) -> list[str]:
        tags = [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]
        long = [tag for tag in tags if len(tag) > TAG_MAX_CHARS]
        if long:
            raise forms.ValidationError(f"Each tag is at most {TAG_MAX_CHARS} characters: shorten “{long[0][:20]}…”.")
        return list(dict.fromkeys(tags))

    def clean(self):
        cleaned = super().clean()
        self.step_rows = validate_step_rows(self.step_rows)
        if self.runbook is not None and cleaned.get("version") is None and "version" not in self.errors:
            # Without the version it was opened on, a save could not tell a stale form from a fresh one.
            raise forms.ValidationError("This form does not say which version it was opened on: reload the editor, "
                                        "then make your changes again.")
        if self.runbook is not None and cleaned.get("version") not in (None, self.runbook.version):
            self.now_at_version(self.runbook.version)
            raise forms.ValidationError(stale_version_message(self.runbook.version))
        if len(self.step_rows) > MAX_STEPS:
            raise forms.ValidationError(f"A runbook has at most {MAX_STEPS} steps.")
        if any(row.errors for row in self.step_rows):
            raise forms.ValidationError("Some steps need attention: see the messages by the fields.")
        self._read_front_matter(cleaned)
        return cleaned

    def _read_front_matter(self, cleaned: dict) -> None:
        """Front matter at the top of the Markdown fills the empty fields it names; the rest is kept aside."""
        if "body_markdown" not in cleaned:
            return
        try:
            front, rest = split_front_matter(cleaned["body_markdown"])
        except ValueError as exc:
            self.add_error(
                "body_markdown", f"The metadata block at the top (between the --- lines) cannot be read: {exc}."
            )
            return
        if not front:
            return
        updates, extra = front_matter_fields(front, current=cleaned)
        linked = {"front_matter_extra": extra}
        link_fields(linked, {key: cleaned[key] for key in ("source_url", "aliases") if cleaned.get(key)})
        extra = linked.pop("front_matter_extra")
        updates.update(linked)
        cleaned.update(updates)
        cleaned["body_markdown"] = rest.lstrip("\n")
        cleaned["front_matter_extra"] = {**((self.runbook.front_matter_extra or {}) if self.runbook else {}), **extra}
        self.front_matter_keys = sorted(front)

    @property
    def has_step_errors(self) -> bool:
        return any(row.errors for row in self.step_rows)

    def runbook_data(self) -> dict:
        """The cleaned values as runbook_upsert data (a valid form only)."""
        data = {
            key: self.cleaned_data[key]
            for key in (
                "name",
                "display_title",
                "description",
                "tags",
                "service",
                "category",
                "aliases",
                "source_url",
                "body_markdown",
                "status",
                "review_interval_days",
            )
        }
        data["steps"] = [row.as_step() for row in self.step_rows]
        if "front_matter_extra" in self.cleaned_data:
            data["front_matter_extra"] = self.cleaned_data["front_matter_extra"]
        return data
