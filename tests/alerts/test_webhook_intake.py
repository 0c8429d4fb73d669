"""alerts/intake.py without HTTP: Alertmanager's fingerprint, RFC 3339 times, format detection."""

from __future__ import annotations

import datetime as dt

import pytest

from alerts.intake import GO_ZERO_TIME, detect_format, label_fingerprint, notification_parse, rfc3339_parse
from tests.alerts.test_webhook import fixture


def test_the_fingerprint_is_alertmanagers():
    # prometheus/common model: TestMetricToFingerprint's vectors (labelSetToFingerprint).
    assert label_fingerprint({}) == f"{14695981039346656037:016x}"
    assert label_fingerprint({"name": "garland, briggs", "fear": "love is not enough"}) == f"{5799056148416392346:016x}"
    assert label_fingerprint({"a": "b", "c": "d"}) == label_fingerprint({"c": "d", "a": "b"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T22:01:15.123456789Z", dt.datetime(2026, 11, 30, 22, 1, 15, 123456, tzinfo=dt.UTC)),
        ("2026-11-30t22:01:15z", dt.datetime(2026, 11, 30, 22, 1, 15, tzinfo=dt.UTC)),
        ("2021-10-12T09:51:03.157076+02:00", dt.datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=dt.UTC)),
        ("0001-01-01T00:00:00Z", GO_ZERO_TIME),
        ("2026-11-30 22:01:15Z", None),
        ("2026-11-30T22:01Z", None),
        ("2026-11-30T22:01:15+0200", None),
        ("2026-11-30T24:00:00Z", None),
        ("９９９９-01-01T00:00:00Z", None),
        ("9999-12-31T23:00:00-02:00", None),
    ],
)
def test_rfc3339(text, expected):
    assert rfc3339_parse(text) == expected


def test_grafana_is_told_apart_by_its_own_fields():
    assert detect_format(fixture("grafana_firing.json")) == "grafana"
    assert detect_format(fixture("alertmanager_firing.json")) == "alertmanager"


def test_a_firing_alert_has_no_end_and_a_resolved_one_has_its_end():
    firing = notification_parse(fixture("alertmanager_firing.json"))
    resolved = notification_parse(fixture("alertmanager_resolved.json"))
    assert {alert.ends_at for alert in firing.alerts} == {None}
    assert resolved.alerts[1].ends_at == dt.datetime(2026, 11, 30, 23, 41, tzinfo=dt.UTC)
