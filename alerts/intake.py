"""Reading a webhook body: Alertmanager's (``version`` "4") or Grafana's contact point payload (``version``
"1", Alertmanager-shaped plus ``orgId``, ``title``, ``state``, ``message`` and per-alert extras), parsed and
validated into frozen dataclasses. Nothing here touches the database (docs/alerts.md, "Intake").

Every error names the field it is about (``alerts[3].startsAt``). Text that PostgreSQL cannot store (NUL,
unpaired UTF-16 surrogates from a ``\\ud800`` escape) is replaced with U+FFFD, in keys as in values, everywhere
in the body: an alert's words are never a reason to lose the alert.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from aihelper.core.api_limits import DuplicateKey, json_depth, json_type, object_without_duplicate_keys, printable
from alerts.models import AlertFormat, AlertStatus

# Limits of one webhook body (docs/alerts.md, "Limits"). The byte limit is the view's; these are per field.
MAX_BODY_BYTES = settings.ALERT_WEBHOOK_MAX_BODY_BYTES
MAX_ALERTS = 1000
MAX_JSON_DEPTH = 16
MAX_LABELS = 128
MAX_LABEL_NAME_CHARS = 256
MAX_LABEL_VALUE_CHARS = 4096
MAX_ANNOTATION_VALUE_CHARS = 65536
MAX_GROUP_KEY_CHARS = 8192
MAX_URL_CHARS = 8192
MAX_FINGERPRINT_CHARS = 64
MAX_TRUNCATED_ALERTS = 2**31 - 1  # the column is a PositiveIntegerField
MAX_ERRORS_REPORTED = 20
ALERTNAME_MAX_CHARS = 200  # Alert.alertname's max_length

ALERTMANAGER_VERSION = "4"
GRAFANA_VERSION = "1"
# Top-level keys only Grafana sends (its docs' "Body" table): how one URL tells the two apart.
GRAFANA_ONLY_KEYS = frozenset({"orgId", "title", "state", "message"})
# The per-alert keys both send; anything else on an alert (Grafana's values, valueString, dashboardURL,
# panelURL, silenceURL, imageURL, and keys neither documents) is kept in Alert.extra.
ALERT_KEYS = frozenset({"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"})
GRAFANA_URL_KEYS = ("silenceURL", "dashboardURL", "panelURL", "imageURL")
STATUSES = frozenset(AlertStatus.values)

REPLACEMENT_CHARACTER = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Only a \u escape can put NUL or a lone surrogate into parsed JSON: a cheap test before walking the body.
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# RFC 3339 date-time (section 5.6): full date, "T", time with optional fraction, "Z" or a numeric offset.
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?(?P<offset>[Zz]|[+-]\d{2}:\d{2})\Z",
    re.ASCII,
)
# Go's zero time: what Alertmanager and Grafana send as endsAt while an alert is firing.
GO_ZERO_TIME = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
_PATH_KEY_MAX_CHARS = 80

# Alertmanager's fingerprint: FNV-1a 64 over the sorted label names and values, each followed by 0xff
# (prometheus/common model.LabelSet.Fingerprint), written as 16 hex digits.
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_FNV_MASK = 2**64 - 1
_LABEL_SEPARATOR = 0xFF


class IntakeError(Exception):
    """The body cannot be taken; ``problems`` are (field path, message) pairs, first one first."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        path, message = problems[0]
        super().__init__(f"{path}: {message}" if path else message)

    def as_fields(self) -> dict[str, list[str]]:
        fields: dict[str, list[str]] = {}
        for path, message in self.problems:
            fields.setdefault(path or "non_field_errors", []).append(message)
        return fields


@dataclass(frozen=True)
class AlertIn:
    """One alert of a notification, as it will be stored (times in UTC; ``ends_at`` None unless resolved)."""

    status: str
    fingerprint: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    alertname: str
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    extra: dict[str, Any]


@dataclass(frozen=True)
class NotificationIn:
    """One webhook body: the group-level fields, its alerts, and the whole body (made storable) as received."""

    format: str
    status: str
    group_key: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    title: str
    message: str
    truncated_alerts: int
    alerts: tuple[AlertIn, ...]
    payload: dict[str, Any]


def storable(value: Any) -> Any:
    """``value`` (parsed JSON) with NUL and unpaired surrogates replaced by U+FFFD in every key and string."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def body_parse(raw: bytes) -> Any:
    """The JSON of a body within the byte limit, made storable; IntakeError when it is not JSON."""
    if not raw.strip():
        raise IntakeError([("", "The request body is empty; send the webhook's JSON object.")])
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=object_without_duplicate_keys)
    except RecursionError:
        raise IntakeError([("", f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")]) from None
    except DuplicateKey as exc:
        raise IntakeError([("", str(exc))]) from None
    except UnicodeDecodeError as exc:
        raise IntakeError([("", f"The request body is not UTF-8: {exc.reason} at byte {exc.start}.")]) from None
    except ValueError as exc:
        raise IntakeError([("", f"The request body is not valid JSON: {printable(str(exc))}")]) from None
    if json_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise IntakeError([("", f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")])
    if _UNSTORABLE_ESCAPE.search(raw):
        data = storable(data)
    return data


def detect_format(data: dict[str, Any]) -> str:
    """Grafana when the body has a key only Grafana sends, else Alertmanager."""
    return AlertFormat.GRAFANA if GRAFANA_ONLY_KEYS & data.keys() else AlertFormat.ALERTMANAGER


def notification_parse(data: Any, *, format: str | None = None) -> NotificationIn:
    """Validate a parsed body (``body_parse``) into a NotificationIn; ``format`` None: detect it."""
    if not isinstance(data, dict):
        raise IntakeError([("", f"The body must be a JSON object, not {json_type(data)}.")])
    checker = _Checker()
    body_format = format or detect_format(data)
    checker.version(data, body_format)
    status = checker.status(data, "status", "")
    group_key = checker.text(data, "groupKey", "", required=True, max_chars=MAX_GROUP_KEY_CHARS)
    if "groupKey" in data and isinstance(group_key, str) and not group_key:
        checker.problem("groupKey", "must not be empty")
    checker.text(data, "receiver", "", max_chars=MAX_GROUP_KEY_CHARS)
    group_labels = checker.string_map(data, "groupLabels", "", MAX_LABEL_VALUE_CHARS)
    common_labels = checker.string_map(data, "commonLabels", "", MAX_LABEL_VALUE_CHARS)
    common_annotations = checker.string_map(data, "commonAnnotations", "", MAX_ANNOTATION_VALUE_CHARS)
    external_url = checker.text(data, "externalURL", "", max_chars=MAX_URL_CHARS)
    truncated = checker.count(data, "truncatedAlerts", "")
    # Grafana's message lists every alert of the group: only the body limit bounds it.
    title = checker.text(data, "title", "", max_chars=MAX_BODY_BYTES)
    message = checker.text(data, "message", "", max_chars=MAX_BODY_BYTES)
    checker.text(data, "state", "", max_chars=MAX_LABEL_NAME_CHARS)
    if "orgId" in data and not _is_int(data["orgId"]):
        checker.problem("orgId", f"must be an integer, not {json_type(data['orgId'])}")
    alerts = checker.alerts(data)
    checker.raise_if_any()
    return NotificationIn(
        format=body_format,
        status=status,
        group_key=group_key,
        group_labels=group_labels,
        common_labels=common_labels,
        common_annotations=common_annotations,
        external_url=external_url,
        title=title,
        message=message,
        truncated_alerts=truncated,
        alerts=alerts,
        payload=data,
    )


def label_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (16 hex digits), for a body whose alert has none."""
    digest = _FNV_OFFSET
    for name in sorted(labels, key=_utf8):
        for part in (_utf8(name), _utf8(labels[name])):
            for byte in part:
                digest = ((digest ^ byte) * _FNV_PRIME) & _FNV_MASK
            digest = ((digest ^ _LABEL_SEPARATOR) * _FNV_PRIME) & _FNV_MASK
    return f"{digest:016x}"


def rfc3339_parse(text: str) -> dt.datetime | None:
    """An RFC 3339 date-time in UTC (fraction cut to microseconds, as PostgreSQL keeps it); None if not one."""
    match = _RFC3339.match(text)
    if match is None:
        return None
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    offset = match["offset"].upper().replace("Z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{offset}")
        return moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


class _Checker:
    """Collects every problem of a body (up to MAX_ERRORS_REPORTED) so that one answer names them all."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def problem(self, path: str, message: str) -> None:
        if len(self.problems) < MAX_ERRORS_REPORTED:
            self.problems.append((path, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise IntakeError(self.problems)

    def version(self, data: dict, body_format: str) -> None:
        version = data.get("version")
        if body_format == AlertFormat.ALERTMANAGER:
            if version != ALERTMANAGER_VERSION:
                shown = "missing" if version is None else _shown(version)
                expected = f'"{ALERTMANAGER_VERSION}" (Alertmanager\'s webhook format)'
                self.problem("version", f"must be {expected}, not {shown}")
        elif version is not None and version != GRAFANA_VERSION:
            self.problem("version", f'must be "{GRAFANA_VERSION}" (Grafana\'s webhook format), not {_shown(version)}')

    def status(self, data: dict, key: str, path: str) -> str:
        where = _join(path, key)
        if key not in data:
            self.problem(where, 'is required: "firing" or "resolved"')
            return ""
        value = data[key]
        if not isinstance(value, str) or value not in STATUSES:
            self.problem(where, f'must be "firing" or "resolved", not {_shown(value)}')
            return ""
        return value

    def text(self, data: dict, key: str, path: str, *, max_chars: int, required: bool = False) -> str:
        where = _join(path, key)
        if key not in data:
            if required:
                self.problem(where, "is required")
            return ""
        value = data[key]
        if not isinstance(value, str):
            self.problem(where, f"must be a string, not {json_type(value)}")
            return ""
        if len(value) > max_chars:
            self.problem(where, f"is {len(value)} characters long; the limit is {max_chars}")
            return ""
        return value

    def count(self, data: dict, key: str, path: str) -> int:
        value = data.get(key, 0)
        if not _is_int(value) or not 0 <= value <= MAX_TRUNCATED_ALERTS:
            expected = f"a whole number from 0 to {MAX_TRUNCATED_ALERTS}"
            self.problem(_join(path, key), f"must be {expected}, not {_shown(value)}")
            return 0
        return value

    def string_map(self, data: dict, key: str, path: str, max_value_chars: int) -> dict[str, str]:
        where = _join(path, key)
        value = data.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(where, f"must be an object of strings, not {json_type(value)}")
            return {}
        if len(value) > MAX_LABELS:
            self.problem(where, f"has {len(value)} entries; the limit is {MAX_LABELS}")
            return {}
        valid = True
        kept = {}
        for name, item in value.items():
            item_path = _join(where, name)
            if not name or len(name) > MAX_LABEL_NAME_CHARS:
                self.problem(item_path, f"a name must be 1 to {MAX_LABEL_NAME_CHARS} characters long")
            elif not isinstance(item, str):
                self.problem(item_path, f"must be a string, not {json_type(item)}")
            else:
                # A value over the limit is cut, not refused: Alertmanager does not re-send a group answered
                # 4xx, so one long annotation would lose every alert of it (the body keeps the whole text).
                kept[name] = item if len(item) <= max_value_chars else item[: max_value_chars - 1] + "…"
                continue
            valid = False
        return kept if valid else {}

    def time(self, data: dict, key: str, path: str, *, required: bool) -> dt.datetime | None:
        where = _join(path, key)
        if key not in data or data[key] is None:
            if required:
                self.problem(where, "is required (an RFC 3339 time)")
            return None
        value = data[key]
        if not isinstance(value, str):
            self.problem(where, f"must be an RFC 3339 time string, not {json_type(value)}")
            return None
        moment = rfc3339_parse(value)
        if moment is None:
            self.problem(where, f"not an RFC 3339 time: {_shown(value)}")
        return moment

    def alerts(self, data: dict) -> tuple[AlertIn, ...]:
        value = data.get("alerts")
        if not isinstance(value, list) or not value:
            what = "missing" if value is None else json_type(value) if not isinstance(value, list) else "empty"
            self.problem("alerts", f"must be a non-empty list of alerts, not {what}")
            return ()
        if len(value) > MAX_ALERTS:
            self.problem("alerts", f"has {len(value)} alerts; the limit is {MAX_ALERTS} per notification")
            return ()
        parsed = []
        for index, item in enumerate(value):
            alert = self.alert(item, f"alerts[{index}]")
            if alert is not None:
                parsed.append(alert)
        return tuple(parsed)

    def alert(self, item: Any, path: str) -> AlertIn | None:
        if not isinstance(item, dict):
            self.problem(path, f"must be an object, not {json_type(item)}")
            return None
        before = len(self.problems)
        status = self.status(item, "status", path)
        if "labels" not in item:
            self.problem(_join(path, "labels"), "is required (an object of strings)")
        labels = self.string_map(item, "labels", path, MAX_LABEL_VALUE_CHARS)
        annotations = self.string_map(item, "annotations", path, MAX_ANNOTATION_VALUE_CHARS)
        starts_at = self.time(item, "startsAt", path, required=True)
        ends_at = self.time(item, "endsAt", path, required=False)
        generator_url = self.text(item, "generatorURL", path, max_chars=MAX_URL_CHARS)
        fingerprint = self.fingerprint(item, path, labels)
        extra = self.extras(item, path)
        resolved_at = ends_at if status == AlertStatus.RESOLVED and ends_at != GO_ZERO_TIME else None
        if resolved_at is not None and starts_at is not None and resolved_at < starts_at:
            self.problem(_join(path, "endsAt"), f"({resolved_at.isoformat()}) is before startsAt "
                         f"({starts_at.isoformat()}): a resolved alert cannot end before it started")
        if len(self.problems) != before or starts_at is None:
            return None
        return AlertIn(
            status=status,
            fingerprint=fingerprint,
            starts_at=starts_at,
            ends_at=resolved_at,
            alertname=labels.get("alertname", "")[:ALERTNAME_MAX_CHARS],
            labels=labels,
            annotations=annotations,
            generator_url=generator_url,
            extra=extra,
        )

    def fingerprint(self, item: dict, path: str, labels: dict[str, str]) -> str:
        if "fingerprint" not in item:
            return label_fingerprint(labels)
        value = item["fingerprint"]
        if not isinstance(value, str) or not value or len(value) > MAX_FINGERPRINT_CHARS:
            shown = json_type(value) if not isinstance(value, str) else f"{len(value)} characters"
            expected = f"a string of 1 to {MAX_FINGERPRINT_CHARS} characters"
            self.problem(_join(path, "fingerprint"), f"must be {expected}, not {shown}")
            return ""
        return value

    def extras(self, item: dict, path: str) -> dict[str, Any]:
        extra = {key: value for key, value in item.items() if key not in ALERT_KEYS}
        for key in GRAFANA_URL_KEYS:
            self.text(item, key, path, max_chars=MAX_URL_CHARS)
        self.text(item, "valueString", path, max_chars=MAX_ANNOTATION_VALUE_CHARS)
        values = item.get("values")
        if values is not None:
            if not isinstance(values, dict):
                self.problem(_join(path, "values"), f"must be an object of numbers, not {json_type(values)}")
            else:
                for name, number in values.items():
                    if number is not None and (not isinstance(number, int | float) or isinstance(number, bool)):
                        self.problem(_join(_join(path, "values"), name), f"must be a number, not {json_type(number)}")
        return extra


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _join(path: str, key: str) -> str:
    shown = printable(key)
    if len(shown) > _PATH_KEY_MAX_CHARS:
        shown = shown[:_PATH_KEY_MAX_CHARS] + "…"
    return f"{path}.{shown}" if path else shown


def _shown(value: Any) -> str:
    """A client value quoted in a message: short, and printable whatever it holds."""
    if isinstance(value, str):
        text = printable(value)
        return json.dumps(text[:60] + ("…" if len(text) > 60 else ""), ensure_ascii=False)
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return json_type(value)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e999 parses to infinity, which JSON (and so jsonb) cannot hold.
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is out of range for a JSON number")
    return number
