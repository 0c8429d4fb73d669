"""Serializer fields for JSON input that take only the JSON type they name.

DRF's own fields coerce: a UUIDField takes the number 12 as 00000000-0000-0000-0000-00000000000c (so a client's
mistake became a 404 for an object nobody has, or an event id nobody chose) and a CharField takes 5 as "5".
Input serializers use these instead; output serializers keep DRF's.
"""

from __future__ import annotations

from rest_framework import serializers

from aihelper.core.api_limits import json_type


class _StringOnly:
    """Refuses any JSON value but a string before the field's own parsing."""

    default_error_messages = {"not_a_string": "Must be a {what} string, not {kind}."}
    what = ""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", what=self.what, kind=json_type(data))
        return super().to_internal_value(data)


class JSONUUIDField(_StringOnly, serializers.UUIDField):
    """A UUID written as a JSON string (any form ``uuid.UUID`` reads)."""

    what = "UUID"


class JSONCharField(_StringOnly, serializers.CharField):
    """Text written as a JSON string."""

    default_error_messages = {"not_a_string": "Must be a string, not {kind}."}
