"""Alert receivers, created through alerts.receivers as the admin and the command create them."""

from __future__ import annotations

import factory

from alerts.models import AlertReceiver
from alerts.receivers import alert_receiver_create


class AlertReceiverFactory(factory.Factory):
    """``AlertReceiverFactory()`` -> a receiver with ``.token`` set to its bearer token (not stored)."""

    class Meta:
        model = AlertReceiver

    name = factory.Sequence(lambda n: f"alertmanager-{n}")
    created_by = None

    @classmethod
    def _create(cls, model_class, *args, name: str, created_by=None, **kwargs) -> AlertReceiver:
        created = alert_receiver_create(name=name, created_by=created_by)
        created.receiver.token = created.token
        return created.receiver
