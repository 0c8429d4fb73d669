"""Storing one webhook notification: its group, its alerts, the body as received and a recommendation job for
every new firing alert, in one transaction that has committed before the webhook is answered
(docs/alerts.md, "Storage and idempotency")."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import DatabaseError, transaction

from alerts.intake import AlertIn, NotificationIn
from alerts.models import AlertReceiver, AlertStatus
from alerts.outcomes import alert_resolutions_record
from alerts.sql import notification_store
from alerts.tasks import recommend_alert

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredNotification:
    """What one post changed: ``stored`` alerts (distinct instances of the body), ``new`` of them inserted,
    ``resolved`` of them resolved by this post; the ids of the new firing ones (a job deferred for each)."""

    group_id: int
    notification_id: int
    stored: int
    new: int
    resolved: int
    new_firing_ids: tuple[int, ...]


def distinct_alerts(alerts: tuple[AlertIn, ...]) -> list[AlertIn]:
    """One alert per (fingerprint, starts_at), the last of the body winning (one statement cannot update a row
    twice; two spellings of one time, "+02:00" and "Z", are the same instance)."""
    by_key = {(alert.fingerprint, alert.starts_at): alert for alert in alerts}
    return list(by_key.values())


def alert_notification_store(
    *, receiver: AlertReceiver, notification: NotificationIn, received_at: dt.datetime
) -> StoredNotification:
    alerts = distinct_alerts(notification.alerts)
    with transaction.atomic(durable=True):
        rows = notification_store(receiver=receiver, notification=notification, alerts=alerts, received_at=received_at)
        new_firing = tuple(sorted(row.id for row in rows.alerts if row.inserted and row.status == AlertStatus.FIRING))
        if new_firing:
            # One statement for all the jobs, on Django's connection: in this transaction.
            recommend_alert.batch_defer(*({"alert_id": alert_id} for alert_id in new_firing))
        resolved_now = [row.id for row in rows.alerts if row.resolved_now]
        if resolved_now:
            # The resolution is an outcome of every presentation of the alert (docs/alerts.md, "Outcomes"). In
            # a savepoint: whatever goes wrong there costs those outcome events, never the notification.
            try:
                with transaction.atomic():
                    alert_resolutions_record(alert_ids=resolved_now)
            except DatabaseError:
                logger.exception("alert resolutions of notification to group %s not recorded", rows.group_id)
    return StoredNotification(
        group_id=rows.group_id,
        notification_id=rows.notification_id,
        stored=len(rows.alerts),
        new=sum(row.inserted for row in rows.alerts),
        resolved=sum(row.resolved_now for row in rows.alerts),
        new_firing_ids=new_firing,
    )
