"""Each statement of alerts/sql.py on data whose answer is known."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from alerts.intake import AlertIn, NotificationIn
from alerts.models import Alert, AlertGroup, AlertNotification
from alerts.sql import notification_store
from tests.alerts.factories import AlertReceiverFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 30, 22, 0, 0, 123456, tzinfo=dt.UTC)


def _receiver(name: str = "prod"):
    return AlertReceiverFactory(name=name)


def _notification(alerts, *, group_key: str = "{}:{}", **fields) -> NotificationIn:
    values = dict(
        format="alertmanager",
        status=alerts[0].status,
        group_key=group_key,
        group_labels={"alertname": "DiskFull"},
        common_labels={"job": "node"},
        common_annotations={},
        external_url="http://am:9093",
        title="",
        message="",
        truncated_alerts=0,
        alerts=tuple(alerts),
        payload={"version": "4", "x-unknown": [1, {"k": "v"}]},
    )
    values.update(fields)
    return NotificationIn(**values)


def upsert(receiver, alerts, *, received_at, group_key: str = "{}:{}", **fields):
    """The statement as storage runs it; the alerts' rows."""
    return store(receiver, alerts, received_at=received_at, group_key=group_key, **fields).alerts


def store(receiver, alerts, *, received_at, group_key: str = "{}:{}", **fields):
    notification = _notification(alerts, group_key=group_key, **fields)
    return notification_store(receiver=receiver, notification=notification, alerts=alerts, received_at=received_at)


def _alert(fingerprint: str, *, status: str = "firing", starts_at: dt.datetime = T0, **fields) -> AlertIn:
    values = dict(
        status=status,
        fingerprint=fingerprint,
        starts_at=starts_at,
        ends_at=None,
        alertname="DiskFull",
        labels={"alertname": "DiskFull", "instance": fingerprint},
        annotations={"summary": "full"},
        generator_url="http://prometheus/graph",
        extra={},
    )
    values.update(fields)
    return AlertIn(**values)


def _by_id(rows):
    return {row.id: row for row in rows}


def test_the_group_and_the_body_are_stored_with_the_alerts():
    receiver = _receiver()
    stored = store(receiver, [_alert("a"), _alert("b")], received_at=T0, title="[FIRING:2]", truncated_alerts=3)

    group = AlertGroup.objects.get()
    assert stored.group_id == group.pk
    assert (group.receiver, group.group_key, group.format, group.status) == (
        receiver,
        "{}:{}",
        "alertmanager",
        "firing",
    )
    assert (group.group_labels, group.common_labels) == ({"alertname": "DiskFull"}, {"job": "node"})
    assert (group.external_url, group.title, group.truncated_alerts) == ("http://am:9093", "[FIRING:2]", 3)
    assert (group.first_seen, group.last_seen) == (T0, T0)
    notification = AlertNotification.objects.get()
    assert stored.notification_id == notification.pk
    assert (notification.group, notification.receiver, notification.received_at) == (group, receiver, T0)
    assert (notification.status, notification.alert_count) == ("firing", 2)
    assert notification.payload == {"version": "4", "x-unknown": [1, {"k": "v"}]}

    later = T0 + dt.timedelta(minutes=3)
    again = store(receiver, [_alert("a", status="resolved")], received_at=later, title="[RESOLVED]")
    group.refresh_from_db()
    assert again.group_id == group.pk and AlertNotification.objects.count() == 2
    assert (group.status, group.title, group.first_seen, group.last_seen) == ("resolved", "[RESOLVED]", T0, later)
    other = store(_receiver("staging"), [_alert("a")], received_at=later)
    assert other.group_id != group.pk  # groups are per receiver


def test_new_alerts_are_inserted_with_every_column():
    at = T0 + dt.timedelta(minutes=1)
    rows = upsert(_receiver(), [_alert("a"), _alert("b", extra={"values": {"B": 1.5}})], received_at=at)
    group = AlertGroup.objects.get()

    assert [(row.inserted, row.status, row.resolved_now) for row in rows] == [(True, "firing", False)] * 2
    stored = Alert.objects.get(fingerprint="b")
    assert stored.pk in _by_id(rows)
    assert (stored.group_id, stored.starts_at, stored.ends_at) == (group.pk, T0, None)
    assert (stored.first_received_at, stored.last_seen, stored.resolved_received_at) == (at, at, None)
    assert stored.labels == {"alertname": "DiskFull", "instance": "b"}
    assert stored.extra == {"values": {"B": 1.5}}
    assert stored.recommendation_state == "pending" and stored.recommendation_query == ""


def test_a_repeat_updates_in_place_and_keeps_the_first_group():
    receiver = _receiver()
    (inserted,) = upsert(receiver, [_alert("a")], received_at=T0, group_key="g1")
    first_group = AlertGroup.objects.get()
    later = T0 + dt.timedelta(minutes=5)

    (repeat,) = upsert(receiver, [_alert("a", annotations={"summary": "fuller"})], received_at=later, group_key="g2")

    assert (repeat.id, repeat.inserted, repeat.status) == (inserted.id, False, "firing")
    stored = Alert.objects.get()
    assert (stored.group_id, stored.last_seen, stored.first_received_at) == (first_group.pk, later, T0)
    assert stored.annotations == {"summary": "fuller"}

    # An older notification arriving late does not move last_seen back.
    upsert(receiver, [_alert("a")], received_at=T0 + dt.timedelta(minutes=1), group_key="g1")
    assert Alert.objects.get().last_seen == later


def test_a_resolve_is_recorded_once_until_the_alert_fires_again():
    receiver = _receiver()
    upsert(receiver, [_alert("a")], received_at=T0)
    ended = T0 + dt.timedelta(minutes=9)
    resolved_at = T0 + dt.timedelta(minutes=10)

    (row,) = upsert(receiver, [_alert("a", status="resolved", ends_at=ended)], received_at=resolved_at)
    assert (row.inserted, row.status, row.resolved_now) == (False, "resolved", True)
    stored = Alert.objects.get()
    assert (stored.status, stored.ends_at, stored.resolved_received_at) == ("resolved", ended, resolved_at)

    later = resolved_at + dt.timedelta(minutes=1)
    (again,) = upsert(receiver, [_alert("a", status="resolved", ends_at=later)], received_at=later)
    assert again.resolved_now is False
    stored = Alert.objects.get()
    assert (stored.status, stored.ends_at, stored.resolved_received_at) == ("resolved", ended, resolved_at)

    # The newest notification wins: firing again (same start) reopens it; a resolve after that is recorded anew.
    (firing,) = upsert(receiver, [_alert("a")], received_at=later + dt.timedelta(seconds=1))
    assert (firing.status, firing.resolved_now) == ("firing", False)
    assert Alert.objects.values_list("status", "ends_at", "resolved_received_at").get() == ("firing", None, None)
    final = later + dt.timedelta(minutes=5)
    (row,) = upsert(receiver, [_alert("a", status="resolved", ends_at=final)], received_at=final)
    assert (row.status, row.resolved_now) == ("resolved", True)
    assert Alert.objects.values_list("ends_at", "resolved_received_at").get() == (final, final)


def test_a_resolve_without_an_end_ends_when_received():
    (row,) = upsert(_receiver(), [_alert("a", status="resolved")], received_at=T0)
    assert (row.inserted, row.resolved_now) == (True, True)
    assert Alert.objects.get().ends_at == T0


def test_the_same_fingerprint_with_another_start_is_another_row():
    later_start = T0 + dt.timedelta(hours=1)
    rows = upsert(_receiver(), [_alert("a"), _alert("a", starts_at=later_start)], received_at=T0)
    assert [row.inserted for row in rows] == [True, True]
    assert sorted(Alert.objects.values_list("starts_at", flat=True)) == [T0, later_start]


def test_microseconds_are_part_of_the_key():
    receiver = _receiver()
    upsert(receiver, [_alert("a")], received_at=T0)
    (row,) = upsert(receiver, [_alert("a", starts_at=T0.replace(microsecond=0))], received_at=T0)
    assert row.inserted
    (same,) = upsert(receiver, [dataclasses.replace(_alert("a"))], received_at=T0)
    assert not same.inserted
