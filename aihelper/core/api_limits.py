"""Request-body limits shared by every JSON API: size (413), nesting depth (400), valid JSON (400), and text
and numbers that can be stored (400 naming the field: no NUL, no unpaired UTF-16 surrogate, in keys as in values;
no number beyond a double's range, such as 1e999, which parses to infinity and which jsonb refuses)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 12
# What a path shows of one object key, so an error about a 60 KiB key is not 60 KiB long.
PATH_KEY_MAX_CHARS = 80
# The rule every JSON API applies to every string of its body, as its OpenAPI descriptions say it.
TEXT_RULE = (
    "Every string of the body, object keys included, must be Unicode text without NUL (U+0000) and without "
    "unpaired UTF-16 surrogates (a lone \\ud800 escape), and every number must be within a double's range (not "
    "1e999): otherwise 400, naming the field."
)

# JSON's "\ud800" escape decodes to a lone surrogate in Python: UTF-8 cannot encode it (so neither PostgreSQL
# nor the JSON renderer can take it), and PostgreSQL refuses NUL in text and jsonb.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Only a \u escape can put either into parsed JSON (raw NUL and raw surrogate bytes are already invalid).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


@dataclass(frozen=True)
class TextProblem:
    """The first string of a JSON value that cannot be stored: where it is and what is wrong with it."""

    path: str
    message: str

    def as_errors(self) -> dict[str, list[str]]:
        return {self.path: [self.message]}


def printable(text: str) -> str:
    """``text`` with NUL and unpaired surrogates written as escapes (``\\u0000``, ``\\ud800``): safe to
    encode, render and store. Every error message that may quote client text goes through this."""
    if not _UNSTORABLE.search(text):
        return text
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def printable_json(value):
    """``value`` (parsed JSON, or an error body) with every key and string made ``printable``."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(key) if isinstance(key, str) else key: printable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable_json(item) for item in value]
    return value


def _key_path(path: str, key: str) -> str:
    shown = printable(key)
    if len(shown) > PATH_KEY_MAX_CHARS:
        shown = shown[:PATH_KEY_MAX_CHARS] + "…"
    return f"{path}.{shown}" if path else shown


def _string_problem(text: str, path: str, *, is_key: bool) -> TextProblem | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    what = "This key" if is_key else "This text"
    if found.group() == "\x00":
        message = f"{what} contains a NUL character (\\u0000), which cannot be stored."
    else:
        escape = printable(found.group())
        message = f"{what} contains an unpaired UTF-16 surrogate ({escape}), which is not valid Unicode."
    return TextProblem(path=path or "non_field_errors", message=message)


def json_text_problem(value, path: str = "") -> TextProblem | None:
    """The first string, key or value, or number anywhere in ``value`` that cannot be stored, with its path
    (``events[2].metadata.k``); None when all of it can. Call it on JSON no deeper than MAX_JSON_DEPTH."""
    if isinstance(value, str):
        return _string_problem(value, path, is_key=False)
    if isinstance(value, float) and not math.isfinite(value):
        message = "This number is beyond a double's range (it reads as infinity): it cannot be stored."
        return TextProblem(path=path or "non_field_errors", message=message)
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = _key_path(path, key)
            problem = _string_problem(key, item_path, is_key=True) or json_text_problem(item, item_path)
            if problem is not None:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = json_text_problem(item, f"{path}[{index}]")
            if problem is not None:
                return problem
    return None


def json_type(value) -> str:
    """What a parsed JSON value is, in words for an error message ("a number", "a list", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def json_depth(value, limit: int, level: int = 1) -> int:
    """Nesting depth of parsed JSON, counted only up to just past ``limit`` (never recursing deeper)."""
    if level > limit:
        return level
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    deepest = level
    for child in children:
        deepest = max(deepest, json_depth(child, limit, level + 1))
        if deepest > limit:
            break
    return deepest


class DuplicateKey(ValueError):
    """A JSON object names one key twice: which value was meant is unknowable (parsers disagree: Python keeps
    the last, others the first), so such a body is refused rather than read one way here and another elsewhere."""

    def __init__(self, key: str) -> None:
        super().__init__(f'The JSON object has the key "{printable(key)[:PATH_KEY_MAX_CHARS]}" more than once.')


def object_without_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    """``json.loads``'s ``object_pairs_hook``: the object, or DuplicateKey."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return data


def json_body_parse(raw: bytes, *, item_checked_keys: tuple[str, ...] = ()) -> object:
    """Parse a request body that is within the size limit: empty, invalid or too deep JSON is a ParseError,
    text that cannot be stored a ValidationError naming its path.

    The items of a top-level list under one of ``item_checked_keys`` are left to the view, which checks them
    one by one (``json_text_problem``) so that one bad item of a batch does not refuse the others.
    """
    if not raw.strip():
        raise ParseError("The request body is empty; send a JSON object.")
    out_of_range: list[str] = []

    def parse_float(text: str) -> float:
        number = float(text)
        if not math.isfinite(number):
            out_of_range.append(text)  # kept as infinity, found and named (with its path) by the walk below
        return number

    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=parse_float,
                          object_pairs_hook=object_without_duplicate_keys)
    except RecursionError:
        raise ParseError(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from None
    except DuplicateKey as exc:
        raise ParseError(str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"The request body is not valid JSON: {exc}") from None
    if json_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ParseError(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
    if out_of_range or _UNSTORABLE_ESCAPE.search(raw):  # a cheap filter: the walk below decides
        checked = data
        if isinstance(data, dict) and item_checked_keys:
            checked = {key: [] if key in item_checked_keys and isinstance(item, list) else item
                       for key, item in data.items()}
        problem = json_text_problem(checked)
        if problem is not None:
            raise ValidationError(problem.as_errors())
    return data


class LimitedJSONParser(JSONParser):
    """JSON with a byte limit checked before reading, then ``json_body_parse``'s checks."""

    max_bytes_setting = "API_MAX_BODY_BYTES"
    # Top-level batch lists whose items the view checks itself (see json_body_parse).
    item_checked_keys: tuple[str, ...] = ()

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = getattr(settings, self.max_bytes_setting, 64 * 1024)
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        try:
            declared_bytes = int(declared or 0)
        except ValueError:
            declared_bytes = 0
        if declared_bytes > limit:
            raise PayloadTooLarge(f"The request body is {declared_bytes} bytes; the limit is {limit} bytes.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        return json_body_parse(raw, item_checked_keys=self.item_checked_keys)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
