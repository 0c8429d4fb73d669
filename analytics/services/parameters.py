"""What a reader asked the dashboard, its CSV exports or the metrics API for: every query parameter checked
in one place, each error naming its parameter in words (docs/analytics.md, "Parameters").

A value that reached SQL unchecked was a 500: a NUL is a DataError in PostgreSQL, a date near year 1 or 9999
overflows the range arithmetic. Text is checked before it is parsed, so no message repeats a 10 KB or
binary value; then dates are parsed within a window, and filters are checked against their choices.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from analytics.models import key_validator
from analytics.services.ranges import InvalidRange, analytics_range_parse
from audit.models import EventSource
from runbooks.calibration import STRATEGIES

DATE_MAX_CHARS = 40
KEY_MAX_CHARS = 100
SOURCES = tuple(EventSource.values)
FILTER_PARAMETERS = ("source", "strategy", "experiment", "variant")
# Filters with a closed set of values; experiment and variant are keys of the Experiment model's format.
FILTER_CHOICES = {"source": SOURCES, "strategy": STRATEGIES}


@dataclass(frozen=True)
class DashboardParameters:
    start: dt.datetime
    end: dt.datetime  # exclusive
    source: str | None = None
    strategy: str | None = None
    experiment: str | None = None
    variant: str | None = None


class InvalidParameters(ValueError):
    """Every invalid parameter of one request, parameter name -> what is wrong, in words."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors

    @property
    def message(self) -> str:
        return " ".join(self.errors.values())


def text_problem(name: str, value: str, *, max_chars: int) -> str | None:
    """Why ``value`` cannot be used as text at all (length, control characters, broken UTF-8), or None."""
    if len(value) > max_chars:
        return f"{name} is longer than {max_chars} characters."
    # Invalid UTF-8 in a query string is decoded to U+FFFD; a lone surrogate cannot be stored or encoded.
    if "\ufffd" in value or any("\ud800" <= char <= "\udfff" for char in value):
        return f"{name} is not valid UTF-8 text."
    if any(unicodedata.category(char) == "Cc" for char in value):
        return f"{name} contains a control character (such as NUL)."
    return None


def _filter_problem(name: str, value: str) -> str | None:
    problem = text_problem(name, value, max_chars=KEY_MAX_CHARS)
    if problem:
        return problem
    if name in FILTER_CHOICES:
        if value not in FILTER_CHOICES[name]:
            return f"{name} '{value}' is not one of: {', '.join(FILTER_CHOICES[name])}."
    elif not key_validator.regex.match(value):
        return f"{name} '{value}' is not a key: use lower-case letters, digits, '_' and '-'."
    return None


def analytics_parameters_parse(*, query: Mapping[str, str], now: dt.datetime | None = None) -> DashboardParameters:
    """The checked parameters of a request (``request.GET``); blank means "not given" (the default range,
    no filter). Raises InvalidParameters with every problem found. Other parameters are ignored."""
    errors: dict[str, str] = {}
    values = {name: (query.get(name) or "").strip() for name in ("start", "end", *FILTER_PARAMETERS)}
    for name in ("start", "end"):
        problem = text_problem(name, values[name], max_chars=DATE_MAX_CHARS)
        if problem:
            errors[name] = problem
    for name in FILTER_PARAMETERS:
        problem = _filter_problem(name, values[name]) if values[name] else None
        if problem:
            errors[name] = problem
    start = end = None
    if "start" not in errors and "end" not in errors:
        try:
            start, end = analytics_range_parse(start=values["start"] or None, end=values["end"] or None, now=now)
        except InvalidRange as exc:
            errors |= exc.errors
    if errors:
        raise InvalidParameters(errors)
    return DashboardParameters(start=start, end=end, **{name: values[name] or None for name in FILTER_PARAMETERS})
