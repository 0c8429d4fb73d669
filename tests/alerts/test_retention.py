"""manage.py apply_retention and alert intake: the webhook bodies kept as received go after the retention
period; the alerts parsed from them, and everything the alerts page shows, stay."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from aihelper.core.redaction import RETENTION_MARKER
from alerts.models import Alert, AlertNotification
from tests.alerts.factories import AlertReceiverFactory
from tests.alerts.test_webhook import fixture, post

pytestmark = pytest.mark.django_db


def test_old_webhook_bodies_are_replaced_and_the_alerts_stay(client):
    receiver = AlertReceiverFactory(name="prod-alertmanager")
    old_body = fixture("alertmanager_firing.json")
    assert post(client, old_body, token=receiver.token).status_code == 200
    old = AlertNotification.objects.get()
    AlertNotification.objects.filter(pk=old.pk).update(received_at=timezone.now() - dt.timedelta(days=120))
    recent_body = fixture("alertmanager_firing.json")
    recent_body["commonAnnotations"] = {"summary": "still firing"}
    assert post(client, recent_body, token=receiver.token).status_code == 200
    alerts_before = list(Alert.objects.order_by("pk").values("fingerprint", "status", "labels", "annotations"))

    out = StringIO()
    call_command("apply_retention", stdout=out)

    old.refresh_from_db()
    assert old.payload == {"retention": RETENTION_MARKER}
    assert (old.alert_count, old.status) == (3, "firing")  # what was received, and when, stays
    assert AlertNotification.objects.exclude(pk=old.pk).get().payload == recent_body
    assert list(Alert.objects.order_by("pk").values("fingerprint", "status", "labels", "annotations")) == alerts_before
    assert "alert webhook bodies as received: 1" in out.getvalue()

    again = StringIO()
    call_command("apply_retention", stdout=again)
    assert "alert webhook bodies as received: 0" in again.getvalue()
