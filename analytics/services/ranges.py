"""The time range of a dashboard or API request, from the ISO strings a user typed."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

MAX_RANGE_DAYS = 400
DEFAULT_RANGE_DAYS = 30
# Dates outside this window are refused before any arithmetic: near year 1 or 9999 a day or the 24 h
# attribution window added to a bound overflows (a 500), and no analytics exist there anyway.
EARLIEST_DAY = dt.date(2000, 1, 1)
LATEST_DAY = dt.date(2099, 12, 31)


class InvalidRange(ValueError):
    """A user-supplied range that cannot be used: parameter name -> why, in words that name it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


def _parse_bound(value: str, *, name: str, zone: ZoneInfo, is_end: bool) -> dt.datetime:
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            moment = None
        else:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            day = moment.date()
    except ValueError:
        raise InvalidRange(
            {name: f"{name} '{value}' is not an ISO 8601 date (2026-01-31) or date-time (2026-01-31T08:00:00Z)."}
        ) from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise InvalidRange({name: f"{name} must be between {EARLIEST_DAY} and {LATEST_DAY}."})
    if moment is None:
        return dt.datetime.combine(day + dt.timedelta(days=1 if is_end else 0), dt.time(), tzinfo=zone)
    # In the dashboard's zone: Python accepts offsets up to 23:59, PostgreSQL only up to 15:59.
    return moment.astimezone(zone) if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def analytics_range_parse(
    *, start: str | None, end: str | None, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """(start, end exclusive) from ISO strings. A date means the whole day in settings.TIME_ZONE, so
    end=2026-01-31 includes the 31st. Missing: the last 30 days up to today inclusive."""
    zone = ZoneInfo(settings.TIME_ZONE)
    now = now or timezone.now()
    today = now.astimezone(zone).date()
    bounds: dict[str, dt.datetime] = {}
    errors: dict[str, str] = {}
    for name, value in (("start", start), ("end", end)):
        if value:
            try:
                bounds[name] = _parse_bound(value, name=name, zone=zone, is_end=name == "end")
            except InvalidRange as exc:
                errors |= exc.errors
    if errors:
        raise InvalidRange(errors)
    end_at = bounds.get("end") or dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    start_at = bounds.get("start") or end_at - dt.timedelta(days=DEFAULT_RANGE_DAYS)
    if start_at >= end_at:
        raise InvalidRange({"start": f"start ({start_at.isoformat()}) must be before end ({end_at.isoformat()})."})
    if end_at - start_at > dt.timedelta(days=MAX_RANGE_DAYS):
        # Name the bound the reader gave: with only start given, end is today and start is what to change.
        field = "start" if start and not end else "end"
        raise InvalidRange({field: f"The range from start to end may span at most {MAX_RANGE_DAYS} days."})
    return start_at, end_at
