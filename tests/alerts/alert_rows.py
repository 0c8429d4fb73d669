"""Alert rows for the recommendation tests, written straight with the ORM (intake is not under test here)."""

from __future__ import annotations

import hashlib
import itertools

from django.utils import timezone

from alerts.models import Alert, AlertFormat, AlertGroup, AlertReceiver, AlertStatus

_serial = itertools.count(1)


def alert_group(*, name: str = "test-receiver") -> AlertGroup:
    receiver, _ = AlertReceiver.objects.get_or_create(
        name=name, defaults={"token_hash": hashlib.sha256(name.encode()).hexdigest(), "token_prefix": name[:12]}
    )
    now = timezone.now()
    group, _ = AlertGroup.objects.get_or_create(
        receiver=receiver,
        group_key=f"{{}}:{{alertname=~\".*\"}}/{name}",
        defaults={
            "format": AlertFormat.ALERTMANAGER, "status": AlertStatus.FIRING, "first_seen": now, "last_seen": now
        },
    )
    return group


def alert_row(*, alertname: str = "", annotations: dict | None = None, labels: dict | None = None, **fields) -> Alert:
    """A firing alert, its recommendation pending."""
    now = timezone.now()
    serial = next(_serial)
    group = fields.pop("group", None) or alert_group()
    return Alert.objects.create(
        group=group,
        receiver_id=group.receiver_id,
        fingerprint=f"{serial:016x}",
        starts_at=now,
        status=AlertStatus.FIRING,
        alertname=alertname,
        labels={"alertname": alertname, **(labels or {})} if alertname else (labels or {}),
        annotations=annotations or {},
        first_received_at=now,
        last_seen=now,
        **fields,
    )
