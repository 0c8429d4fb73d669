"""The one typed helper every setting is read through.

Each getter reads one environment variable, converts it, and raises
``ImproperlyConfigured`` naming the variable and the expected form when the
value cannot be used, so a bad deployment fails at start-up instead of at the
first request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

_MISSING = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _read(name: str, default: object, convert: Callable[[str], T], expected: str) -> T:
    raw = os.environ.get(name)
    if raw is None:
        if default is _MISSING:
            raise ImproperlyConfigured(f"Environment variable {name} is required ({expected}).")
        return default  # type: ignore[return-value]
    try:
        return convert(raw.strip())
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"Environment variable {name}={raw!r} is invalid: expected {expected} ({exc})."
        ) from None


def env_str(name: str, default: str | object = _MISSING) -> str:
    return _read(name, default, str, "a string")


def env_bool(name: str, default: bool | object = _MISSING) -> bool:
    def convert(value: str) -> bool:
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("not one of 1/0, true/false, yes/no, on/off")

    return _read(name, default, convert, "a boolean")


def env_int(name: str, default: int | object = _MISSING, *, minimum: int | None = None) -> int:
    def convert(value: str) -> int:
        number = int(value)
        if minimum is not None and number < minimum:
            raise ValueError(f"must be >= {minimum}")
        return number

    return _read(name, default, convert, "an integer")


def env_float(
    name: str,
    default: float | object = _MISSING,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    def convert(value: str) -> float:
        number = float(value)
        if minimum is not None and number < minimum:
            raise ValueError(f"must be >= {minimum}")
        if maximum is not None and number > maximum:
            raise ValueError(f"must be <= {maximum}")
        return number

    return _read(name, default, convert, "a number")


def env_list(name: str, default: list[str] | object = _MISSING) -> list[str]:
    def convert(value: str) -> list[str]:
        return [item.strip() for item in value.split(",") if item.strip()]

    return _read(name, default, convert, "a comma-separated list")


def env_choice(name: str, choices: tuple[str, ...], default: str | object = _MISSING) -> str:
    def convert(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return _read(name, default, convert, f"one of {', '.join(choices)}")
