"""Request-body limits shared by every JSON API: size (413), nesting depth (400), valid JSON (400)."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 12


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


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


class LimitedJSONParser(JSONParser):
    """JSON with a byte limit checked before reading, and a nesting limit checked after parsing."""

    max_bytes_setting = "API_MAX_BODY_BYTES"

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
        if not raw.strip():
            raise ParseError("The request body is empty; send a JSON object.")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except RecursionError:
            raise ParseError(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}") from None
        if json_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise ParseError(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
        return data


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
