"""Who may run a runbook (docs/chat.md): anyone who can see it, except that automated runbooks also
need the user to be staff or in one of the runbook's allowed groups."""

from __future__ import annotations


def runbook_can_execute(*, runbook, user) -> bool:
    if not runbook.enabled or not user.is_authenticated:
        return False
    if not runbook.is_automated or user.is_staff or user.is_superuser:
        return True
    allowed = {group.pk for group in runbook.allowed_groups.all()}
    return bool(allowed & set(user.groups.values_list("pk", flat=True)))
