"""The time range of a dashboard or API request, from the ISO strings a user typed."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

MAX_RANGE_DAYS = 400
DEFAULT_RANGE_DAYS = 30


class InvalidRange(ValueError):
    """A user-supplied range that cannot be used; the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _parse_bound(value: str, *, name: str, zone: ZoneInfo, is_end: bool) -> dt.datetime:
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            moment = dt.datetime.combine(day + dt.timedelta(days=1 if is_end else 0), dt.time(), tzinfo=zone)
        else:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        raise InvalidRange(
            name, f"'{value}' is not an ISO 8601 date (2026-01-31) or date-time (2026-01-31T08:00:00Z)."
        ) from None
    return moment


def analytics_range_parse(
    *, start: str | None, end: str | None, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """(start, end exclusive) from ISO strings. A date means the whole day in settings.TIME_ZONE, so
    end=2026-01-31 includes the 31st. Missing: the last 30 days up to today inclusive."""
    zone = ZoneInfo(settings.TIME_ZONE)
    now = now or timezone.now()
    today = now.astimezone(zone).date()
    end_at = (
        _parse_bound(end, name="end", zone=zone, is_end=True)
        if end
        else dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    )
    start_at = (
        _parse_bound(start, name="start", zone=zone, is_end=False)
        if start
        else end_at - dt.timedelta(days=DEFAULT_RANGE_DAYS)
    )
    if start_at >= end_at:
        raise InvalidRange("start", f"start ({start_at.isoformat()}) must be before end ({end_at.isoformat()}).")
    if end_at - start_at > dt.timedelta(days=MAX_RANGE_DAYS):
        raise InvalidRange("end", f"The range may span at most {MAX_RANGE_DAYS} days.")
    return start_at, end_at
