"""The daily rollups: per audience, the metrics of whole settled days, so any range reads a few thousand
rows (docs/analytics.md, Rollups). Refreshed after the facts; read through ``rollup_span_for``."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from analytics.models import FactsState, RollupAudience
from analytics.sql.common import RollupSpan
from analytics.sql.facts import audit_log_first_created
from analytics.sql.rollups import rollups_analyze, rollups_rebuild
from runbooks.models import Runbook

EVERYONE = "everyone"
ROLLUP_CHUNK_DAYS = 31
ANALYZE_AFTER_DAYS = 60  # audience-days written by one refresh


@dataclass(frozen=True)
class RollupReport:
    audiences: int
    days: int  # audience-days written


def hidden_runbook_ids_for(user) -> list[uuid.UUID] | None:
    """The restricted runbooks (some allowed group) ``user`` is in none of the groups of, enabled or not:
    the runbooks whose metrics they may not see. None when there are none (superusers, and a reader in
    every group needed), who read what everyone does. Keyed on restrictions only, so enabling or disabling
    a runbook does not change anyone's audience (and drop their rollups)."""
    if user.is_superuser:
        return None
    hidden = (
        Runbook.objects.filter(allowed_groups__isnull=False)
        .exclude(allowed_groups__in=user.groups.all())
        .order_by("pk")
        .values_list("pk", flat=True)
        .distinct()
    )
    return sorted(hidden) or None


def visible_runbook_ids_for(user) -> list | None:
    """None (no restriction) for readers who may see every runbook's metrics, else the ids of the runbooks
    ``user`` may see the metrics of: every runbook, enabled or not, but the restricted ones they are not
    allowed (a disabled runbook keeps its history on the dashboard, as it does for superusers)."""
    hidden = hidden_runbook_ids_for(user)
    if hidden is None:
        return None
    return list(Runbook.objects.exclude(pk__in=hidden).values_list("pk", flat=True))


def hidden_runbook_ids(visible_runbook_ids: Sequence[uuid.UUID] | None) -> list[uuid.UUID] | None:
    """The runbooks a reader of ``visible_runbook_ids`` may not see (None: none, i.e. they read what everyone
    does). For ids from ``visible_runbook_ids_for`` these are the reader's ``hidden_runbook_ids_for``."""
    if visible_runbook_ids is None:
        return None
    return sorted(Runbook.objects.exclude(pk__in=list(visible_runbook_ids)).values_list("pk", flat=True)) or None


def audience_key(hidden: Sequence[uuid.UUID] | None) -> str:
    if not hidden:
        return EVERYONE
    digest = hashlib.sha256(",".join(str(runbook_id) for runbook_id in sorted(hidden)).encode()).hexdigest()
    return "hidden:" + digest[:48]


def day_start(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone)


def _wanted_audiences() -> dict[str, list[uuid.UUID] | None]:
    """Everyone (superusers, and staff allowed every restricted runbook) and the hidden set of every other
    active staff member."""
    wanted: dict[str, list[uuid.UUID] | None] = {EVERYONE: None}
    staff = get_user_model().objects.filter(is_staff=True, is_superuser=False, is_active=True)
    for user in staff:
        hidden = hidden_runbook_ids_for(user)
        wanted[audience_key(hidden)] = hidden
    return wanted


def analytics_rollups_refresh(
    *, settled_before: dt.datetime | None, progress: Callable[[str], object] | None = None
) -> RollupReport:
    """Roll up every whole day before ``settled_before`` (the facts' watermark) for each audience.

    Incremental and resumable like the facts: each chunk commits with the audience's ``rolled_until``.
    Audiences nobody has any more are deleted with their rows; a new one (a staff member whose visible
    runbooks changed) is rolled up from the first audit log, and until then its readers get the exact
    facts path."""
    say = progress or (lambda message: None)
    zone_name = settings.TIME_ZONE
    zone = ZoneInfo(zone_name)
    first = audit_log_first_created()
    if settled_before is None or first is None:
        return RollupReport(0, 0)
    wanted = _wanted_audiences()
    RollupAudience.objects.exclude(key__in=list(wanted)).delete()
    until_day = settled_before.astimezone(zone).date()
    days = 0
    for key, hidden in wanted.items():
        audience, _ = RollupAudience.objects.get_or_create(key=key, defaults={"hidden": hidden, "time_zone": zone_name})
        if audience.time_zone != zone_name:
            RollupAudience.objects.filter(pk=audience.pk).delete()
            audience = RollupAudience.objects.create(key=key, hidden=hidden, time_zone=zone_name)
        visible = None if hidden is None else list(Runbook.objects.exclude(pk__in=hidden).values_list("pk", flat=True))
        day = audience.rolled_until.astimezone(zone).date() if audience.rolled_until else first.astimezone(zone).date()
        while day < until_day:
            chunk_end = min(day + dt.timedelta(days=ROLLUP_CHUNK_DAYS), until_day)
            with transaction.atomic():
                audience = RollupAudience.objects.select_for_update().get(pk=audience.pk)
                if audience.rolled_until and audience.rolled_until >= day_start(chunk_end, zone):
                    day = chunk_end  # another run got here first
                    continue
                rollups_rebuild(
                    audience_id=audience.pk,
                    visible_runbook_ids=visible,
                    start=day_start(day, zone),
                    end=day_start(chunk_end, zone),
                    first_day=day,
                    end_day=chunk_end,
                    tz_name=zone_name,
                )
                audience.rolled_until = day_start(chunk_end, zone)
                audience.save(update_fields=["rolled_until"])
            days += (chunk_end - day).days
            say(f"rollups of {key[:15]} up to {chunk_end:%Y-%m-%d}")
            day = chunk_end
    if days > ANALYZE_AFTER_DAYS:
        rollups_analyze()
    return RollupReport(len(wanted), days)


def rollup_span_for(
    *, start: dt.datetime, end: dt.datetime, visible_runbook_ids: Sequence[uuid.UUID] | None
) -> RollupSpan | None:
    """The whole days of [start, end) that this reader's rollups hold (None: none; read the facts)."""
    zone = ZoneInfo(settings.TIME_ZONE)
    reader_key = audience_key(hidden_runbook_ids(visible_runbook_ids))
    keys = {reader_key, EVERYONE}
    audiences = {
        audience.key: audience
        for audience in RollupAudience.objects.filter(
            key__in=keys, time_zone=settings.TIME_ZONE, rolled_until__isnull=False
        )
    }
    if len(audiences) != len(keys):
        return None
    # The per-runbook rollup is written with the everyone audience: both must cover the days.
    until = min(audience.rolled_until for audience in audiences.values())
    first_day = start.astimezone(zone).date()
    if day_start(first_day, zone) < start:
        first_day += dt.timedelta(days=1)
    end_day = min(end, until).astimezone(zone).date()
    if end_day <= first_day:
        return None
    return RollupSpan(
        audience_id=audiences[reader_key].pk,
        start=day_start(first_day, zone),
        end=day_start(end_day, zone),
        first_day=first_day,
        end_day=end_day,
    )


def analytics_rollups_cover(until: dt.datetime) -> bool:
    """Whether the facts and everyone's daily rollups hold every metric of the audit logs before ``until``
    (so the events before it may be archived without losing a metric)."""
    settled = FactsState.objects.filter(pk=1).values_list("settled_before", flat=True).first()
    rolled = RollupAudience.objects.filter(key=EVERYONE).values_list("rolled_until", flat=True).first()
    return bool(settled and rolled and settled >= until and rolled >= until)
