"""Presentation helpers shared by every page that shows runbooks (chat cards, search, runbook and
execution pages), so a confidence or the rule on who may run a runbook reads the same everywhere.
(Where long CamelCase names may wrap is marked in the browser, by static/js/ui.js.)"""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def percent(value) -> str:
    """0.953 -> "95%": confidences and rates are shown to people as whole percentages."""
    if value is None or value == "":
        return ""
    share = float(value)
    if 0 < share < 0.005:
        return "under 1%"
    return f"{round(share * 100)}%"


@register.filter
def other_matches(results) -> list:
    """Search results that are not recommended, in rank order (SearchOutcome.recommended has the rest)."""
    return [result for result in results if not result.recommended]


@register.simple_tag
def run_rule(runbook, can_execute: bool) -> str:
    """The rule of runbooks/access.py in words: who may start a guided run of this runbook."""
    if not runbook.is_automated:
        return "Anyone who can see this runbook may run it."
    names = sorted(group.name for group in runbook.allowed_groups.all())
    who = f"staff or members of {', '.join(names)}" if names else "staff"
    if can_execute:
        return f"Automated runbook: only {who} may run it, and you may."
    return f"Restricted: only {who} may run this automated runbook."
