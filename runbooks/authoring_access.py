"""Who may write a runbook in the editor, and when a runbook is due for review by its owners (issue 20).

Staff may create runbooks and edit every runbook they may see; members of a runbook's owning group may edit
that runbook if they may see it. Nobody edits, or reads in the editor or its history, a runbook restricted
to groups they are not in (superusers see everything).
"""

from __future__ import annotations

import datetime

from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from runbooks.models import Runbook


def can_create_runbooks(user) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


def may_see_runbook(user, runbook: Runbook) -> bool:
    """The RBAC of the runbook page, ignoring the operator's ``enabled`` switch (editors fix disabled ones)."""
    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    restricted = set(runbook.allowed_groups.values_list("pk", flat=True))
    return not restricted or user.groups.filter(pk__in=restricted).exists()


def can_edit_runbook(user, runbook: Runbook) -> bool:
    if not may_see_runbook(user, runbook):
        return False
    if can_create_runbooks(user):
        return True
    return runbook.owner_group_id is not None and user.groups.filter(pk=runbook.owner_group_id).exists()


def review_due_at(runbook: Runbook) -> datetime.datetime | None:
    """When the owners should look at it again: ``review_interval_days`` after the last review (or after it
    was created); None without an interval."""
    if not runbook.review_interval_days:
        return None
    start = runbook.reviewed_at or runbook.created_at or timezone.now()
    return start + datetime.timedelta(days=runbook.review_interval_days)


def review_due(queryset: QuerySet[Runbook], *, now: datetime.datetime | None = None) -> QuerySet[Runbook]:
    """The runbooks of ``queryset`` whose review is due (the same rule as review_due_at, in SQL)."""
    due = ExpressionWrapper(
        Coalesce(F("reviewed_at"), F("created_at")) + F("review_interval_days") * datetime.timedelta(days=1),
        output_field=DateTimeField(),
    )
    return queryset.filter(review_interval_days__gt=0).alias(due_at=due).filter(due_at__lte=now or timezone.now())
