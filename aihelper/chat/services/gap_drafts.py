""" "Draft a runbook" on a knowledge-gap group (Admin → Analytics → Gaps): the LLM writes a first draft from
the group's questions, saved as a draft runbook (status "draft": never searched or recommended) for the
owners to review, linked to the group through ``origin_source``. It needs the LLM, so it lives in the chat
layer; the report itself is analytics' (docs/analytics.md, Knowledge gaps).

Offline provider (no Anthropic key): a structured skeleton built from the group's texts. With Anthropic: the
model, through the same provider and concurrency gate as chat answers, asked for JSON; a reply that is not
the JSON asked for falls back to the skeleton, saying so in the description.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.db import transaction

from aihelper.chat.llm import LLMError, LLMReply, llm_provider_get
from aihelper.chat.prompts import Prompt
from aihelper.chat.services.llm_gate import llm_gate
from analytics.services.gaps import REASON_LABELS, GapGroup, gap_report, gap_source
from audit.sql import advisory_xact_lock
from runbooks.models import STEP_MAX_CHARS, Runbook, RunbookOrigin, RunbookStatus, visible_one_line
from runbooks.services import runbook_upsert

NAME_CHARS = 120
QUESTION_CHARS = 300  # each question quoted in the skeleton
DESCRIPTION_CHARS = 2000
MAX_STEPS = 12
DRAFT_SYSTEM = (
    "You write first drafts of operational runbooks for on-call engineers. You get questions engineers asked "
    "that no existing runbook answered. Reply with one JSON object only, no prose around it: "
    '{"name": "<short title>", "description": "<when to use it, 1-3 sentences>", '
    '"steps": [{"title": "<imperative>", "detail": "<what and why>", "command": "<shell command or empty>"}]} '
    "with 3 to 8 steps. Where you are not sure of a command, leave it empty and say what to check in detail."
)


class GapNotFound(Exception):
    """The group is not in the report of that range (any more)."""


class DraftRefused(Exception):
    """The draft could not be saved as a runbook; the message says why (-> 400)."""


@dataclass(frozen=True)
class GapDraft:
    runbook_id: uuid.UUID
    slug: str
    name: str
    written_by: str  # "offline skeleton" or the model


def _clip(text: str, limit: int, *, one_line: bool = False) -> str:
    text = " ".join(str(text or "").split()) if one_line else str(text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _public_names(group: GapGroup) -> str:
    """The nearest runbooks that everyone may see: a draft is read by people the report's reader is not, so a
    restricted runbook's name never goes into it."""
    ids = [runbook.runbook_id for runbook in group.nearest]
    public = set(Runbook.objects.filter(pk__in=ids, allowed_groups__isnull=True).values_list("pk", flat=True))
    return ", ".join(runbook.name or runbook.slug for runbook in group.nearest if runbook.runbook_id in public)


def _skeleton(group: GapGroup, *, start: dt.datetime, end: dt.datetime, note: str = "") -> dict:
    reasons = ", ".join(f"{count} {REASON_LABELS[reason]}" for reason, count in group.reasons.items() if count)
    asked = _clip("\n".join(f"- {_clip(text, QUESTION_CHARS, one_line=True)}" for text in group.texts), STEP_MAX_CHARS)
    related = _public_names(group) or "none close that everyone may see"
    return {
        # A question may span lines or carry a zero-width character pasted with it: a name may not.
        "name": visible_one_line(f"Draft: {group.texts[0]}")[:NAME_CHARS],
        "description": (
            f"{note}Drafted from {group.size} questions between {start:%Y-%m-%d} and {end:%Y-%m-%d} that went "
            f"wrong ({reasons}). Nearest existing runbooks: {related}."
        ),
        "steps": [
            {"title": "Confirm the symptom", "detail": f"Engineers asked:\n{asked}", "command": ""},
            {
                "title": "Find the cause",
                "detail": "To write: what to check first, and how to tell the causes apart.",
                "command": "",
            },
            {"title": "Fix it", "detail": "To write: the fix for each cause, safest first.", "command": ""},
            {"title": "Verify", "detail": "To write: how to see that the symptom is gone.", "command": ""},
        ],
    }


def _from_reply(text: str) -> dict | None:
    """The draft fields of a reply that is the JSON asked for (else None)."""
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1]) if start >= 0 else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("steps"), list):
        return None
    steps = [
        {key: _clip(step.get(key), STEP_MAX_CHARS) for key in ("title", "detail", "command")}
        for step in data["steps"]
        if isinstance(step, dict) and str(step.get("title") or "").strip()
    ][:MAX_STEPS]
    if not steps or not visible_one_line(data["name"]):
        return None
    return {
        "name": visible_one_line(data["name"])[:NAME_CHARS],
        "description": _clip(data.get("description"), DESCRIPTION_CHARS),
        "steps": steps,
    }


async def _ask(provider, prompt: Prompt, *, user_key) -> str:
    async with llm_gate.slot(user_key=user_key):
        async for chunk in provider.astream(prompt=prompt):
            if isinstance(chunk, LLMReply):
                return chunk.text
    raise LLMError("malformed reply: no final message")


def _llm_fields(group: GapGroup, *, user, start: dt.datetime, end: dt.datetime) -> tuple[dict, str]:
    provider = llm_provider_get()
    if provider.name == "offline":
        return _skeleton(group, start=start, end=end), "offline skeleton"
    question = "Questions engineers asked:\n" + "\n".join(f"- {text}" for text in group.texts)
    prompt = Prompt(
        system=DRAFT_SYSTEM,
        messages=[{"role": "user", "content": question}],
        strategy="gap_draft",
        runbooks=[],
        question=question,
    )
    try:
        fields = _from_reply(async_to_sync(_ask)(provider, prompt, user_key=user.pk))
    except LLMError as exc:
        note = f"The LLM could not write this draft ({exc.reason}); this is the skeleton. "
        return _skeleton(group, start=start, end=end, note=note), "offline skeleton"
    if fields is None:
        note = "The LLM's reply was not the draft asked for; this is the skeleton. "
        return _skeleton(group, start=start, end=end, note=note), "offline skeleton"
    return fields, provider.model or provider.name


def _open_draft(group_key: uuid.UUID) -> GapDraft | None:
    """The draft already written from this group and still a draft (not published or retired since)."""
    runbook = (
        Runbook.objects.filter(origin=RunbookOrigin.GAP_REPORT, origin_source=gap_source(group_key),
                               status=RunbookStatus.DRAFT)
        .order_by("created_at").only("pk", "slug", "name").first()
    )
    return GapDraft(runbook.pk, runbook.slug, runbook.name, "already drafted") if runbook else None


def gap_draft_create(*, user, start: dt.datetime, end: dt.datetime, group_key: uuid.UUID) -> GapDraft:
    """Write and save the draft runbook of the group ``group_key`` of the gap report of [start, end) as
    ``user`` sees it. Raises GapNotFound; ``LLMBusy`` when the LLM gate has no slot.

    One open draft per group: while the group's draft is still a draft, asking again (a double click, a retry
    after a slow answer, a colleague on the same page) returns it instead of writing a second one."""
    report = gap_report(user=user, start=start, end=end)
    group = next((g for g in report.groups if g.key == group_key or group_key in g.member_ids), None)
    if group is None:
        raise GapNotFound("That group is not in the report of this range any more; reload the Gaps page.")
    existing = _open_draft(group.key)
    if existing is not None:
        return existing
    fields, written_by = _llm_fields(group, user=user, start=start, end=end)
    slug = f"drafts/gap-{group.key.hex[:12]}-{uuid.uuid4().hex[:6]}"
    data = fields | {
        "status": RunbookStatus.DRAFT,
        "origin": RunbookOrigin.GAP_REPORT,
        "origin_source": gap_source(group.key),
    }
    try:
        with transaction.atomic():
            # The LLM took seconds: a request for the same group that came meanwhile may have saved its draft.
            advisory_xact_lock(gap_source(group.key))
            existing = _open_draft(group.key)
            if existing is not None:
                return existing
            runbook, _ = runbook_upsert(slug=slug, data=data, changed_by=user, source="gap_report")
    except ValidationError as exc:
        raise DraftRefused("; ".join(exc.messages)) from exc
    return GapDraft(runbook.pk, runbook.slug, runbook.name, written_by)
