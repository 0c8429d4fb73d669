"""Who may run a runbook (docs/chat.md): anyone who can see it, except that automated runbooks also
need the user to be staff or in one of the runbook's allowed groups. The one rule for pages and chat."""

from __future__ import annotations

from collections.abc import Collection


def runbook_can_execute(*, runbook, user, user_group_ids: Collection[int] | None = None) -> bool:
    """``user_group_ids`` lets a caller checking several runbooks look the user's groups up once."""
    if not runbook.enabled or not user.is_authenticated:
        return False
    if not runbook.is_automated or user.is_staff or user.is_superuser:
        return True
    if user_group_ids is None:
        user_group_ids = set(user.groups.values_list("pk", flat=True))
    return any(group.pk in user_group_ids for group in runbook.allowed_groups.all())
