"""Every raw SQL statement of the alerts app (migrations aside), each a named constant or function.

Values are bound parameters and identifiers go through ``psycopg.sql``; nothing is built from input text.
The functions run on the default connection and leave transactions to their callers (alerts/storage.py).
Each statement has its own test on data whose answer is known (tests/alerts/test_sql.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from psycopg import sql

from alerts.intake import AlertIn, NotificationIn
from alerts.models import Alert, AlertGroup, AlertNotification, AlertReceiver, AlertStatus, RecommendationState

ALERTS_TABLE = Alert._meta.db_table

# One webhook body in one statement (one round trip, whatever the number of alerts):
#
# 1. its group, upserted by (receiver, groupKey): the newest notification's group-level fields; the group's
#    row lock makes two posts of the same group take turns for the rest of their transactions;
# 2. the body as received, appended;
# 3. all its alerts, one row per (fingerprint, starts_at), inserted or updated in place. ON CONFLICT makes
#    concurrent posts of the same alert meet on the unique index (the second waits for the first to commit,
#    then updates), so there is never a second row. Rows go in key order, so that two transactions that
#    share alerts lock them in the same order and cannot deadlock.
#
# A repeat updates what the newest notification says (labels, annotations, generatorURL, extra) and
# last_seen; a resolve sets ends_at (endsAt, or the time it was received when the body has none), the status
# and resolved_received_at, and a repeated resolve keeps the first one's values. The newest notification
# wins: a firing one after a resolve reopens the instance (ends_at and resolved_received_at cleared). That is
# what happens when Prometheus loses Alertmanager for longer than resolve_timeout and then sends the alert
# again with its original startsAt; Alertmanager delivers one group's notifications in order (a retry holds
# back the group's next one), so an older "firing" cannot overtake a "resolved". The group an alert was first
# seen in stays its group, and only the receiver of that group may change the alert: a row first seen from
# another receiver is left alone and not returned (a token can touch its own alerts only).
#
# One row per alert changed (at least one, NULL-padded, for the group and notification ids): the group's id,
# the notification's id, the alert's id, whether this statement inserted
# it (xmax = 0 only for a row version created by an insert), its status now, and whether this statement
# resolved it. The alerts must be distinct by (fingerprint, starts_at): a statement cannot update a row twice.
NOTIFICATION_STORE_SQL = sql.SQL(
    "WITH grp AS ("
    " INSERT INTO {groups} AS g (receiver_id, group_key, format, status, group_labels, common_labels,"
    "  common_annotations, external_url, title, message, truncated_alerts, first_seen, last_seen)"
    " VALUES (%(receiver_id)s, %(group_key)s, %(format)s, %(status)s, %(group_labels)s::jsonb,"
    "  %(common_labels)s::jsonb, %(common_annotations)s::jsonb, %(external_url)s, %(title)s, %(message)s,"
    "  %(truncated_alerts)s, %(received_at)s, %(received_at)s)"
    " ON CONFLICT (receiver_id, md5(group_key)) DO UPDATE SET"
    "  format = EXCLUDED.format, status = EXCLUDED.status, group_labels = EXCLUDED.group_labels,"
    "  common_labels = EXCLUDED.common_labels, common_annotations = EXCLUDED.common_annotations,"
    "  external_url = EXCLUDED.external_url, title = EXCLUDED.title, message = EXCLUDED.message,"
    "  truncated_alerts = EXCLUDED.truncated_alerts, last_seen = GREATEST(g.last_seen, EXCLUDED.last_seen)"
    " RETURNING g.id"
    "), notification AS ("
    " INSERT INTO {notifications} (receiver_id, group_id, received_at, status, alert_count, payload)"
    " SELECT %(receiver_id)s, grp.id, %(received_at)s, %(status)s, %(alert_count)s, %(payload)s::jsonb FROM grp"
    " RETURNING id"
    "), upserted AS ("
    " INSERT INTO {alerts} AS a (group_id, receiver_id, fingerprint, starts_at, ends_at, status, alertname,"
    "  labels, annotations,"
    "  generator_url, extra, first_received_at, last_seen, resolved_received_at, recommendation_state,"
    "  recommendation_query)"
    " SELECT grp.id, %(receiver_id)s, r.fingerprint, r.starts_at,"
    "  CASE WHEN r.status = %(resolved)s THEN COALESCE(r.ends_at, %(received_at)s) END,"
    "  r.status, r.alertname, r.labels, r.annotations, r.generator_url, r.extra,"
    "  %(received_at)s, %(received_at)s, CASE WHEN r.status = %(resolved)s THEN %(received_at)s END,"
    "  %(pending)s, ''"
    " FROM grp, jsonb_to_recordset(%(alerts)s::jsonb) AS r(fingerprint text, starts_at timestamptz,"
    "  ends_at timestamptz, status text, alertname text, labels jsonb, annotations jsonb, generator_url text,"
    "  extra jsonb)"
    " ORDER BY r.fingerprint, r.starts_at"
    " ON CONFLICT (fingerprint, starts_at) DO UPDATE SET"
    "  status = EXCLUDED.status,"
    "  ends_at = CASE WHEN EXCLUDED.status = %(resolved)s THEN COALESCE(a.ends_at, EXCLUDED.ends_at) END,"
    "  resolved_received_at = CASE WHEN EXCLUDED.status = %(resolved)s"
    "   THEN COALESCE(a.resolved_received_at, EXCLUDED.resolved_received_at) END,"
    "  alertname = EXCLUDED.alertname, labels = EXCLUDED.labels, annotations = EXCLUDED.annotations,"
    "  generator_url = EXCLUDED.generator_url, extra = EXCLUDED.extra,"
    "  last_seen = GREATEST(a.last_seen, EXCLUDED.last_seen)"
    " WHERE a.receiver_id = %(receiver_id)s"
    " RETURNING a.id, (a.xmax = 0) AS inserted, a.status,"
    "  a.resolved_received_at IS NOT DISTINCT FROM %(received_at)s AS resolved_now"
    ")"
    " SELECT grp.id, notification.id, u.id, u.inserted, u.status, u.resolved_now"
    " FROM grp CROSS JOIN notification LEFT JOIN upserted u ON true"
).format(
    groups=sql.Identifier(AlertGroup._meta.db_table),
    notifications=sql.Identifier(AlertNotification._meta.db_table),
    alerts=sql.Identifier(ALERTS_TABLE),
)


@dataclass(frozen=True)
class UpsertedAlert:
    id: int
    inserted: bool
    status: str
    resolved_now: bool


@dataclass(frozen=True)
class StoredRows:
    group_id: int
    notification_id: int
    alerts: tuple[UpsertedAlert, ...]


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _alert_row(alert: AlertIn) -> dict:
    # Times as full ISO strings: DjangoJSONEncoder would cut them to milliseconds and miss the unique key.
    return {
        "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at is not None else None,
        "status": alert.status,
        "alertname": alert.alertname,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generator_url,
        "extra": alert.extra,
    }


def notification_store(
    *, receiver: AlertReceiver, notification: NotificationIn, alerts: Sequence[AlertIn], received_at: dt.datetime
) -> StoredRows:
    """Store ``notification`` (its group, its body, its ``alerts``: distinct by fingerprint and starts_at)."""
    params = {
        "receiver_id": receiver.pk,
        "group_key": notification.group_key,
        "format": notification.format,
        "status": notification.status,
        "group_labels": _json(notification.group_labels),
        "common_labels": _json(notification.common_labels),
        "common_annotations": _json(notification.common_annotations),
        "external_url": notification.external_url,
        "title": notification.title,
        "message": notification.message,
        "truncated_alerts": notification.truncated_alerts,
        "alert_count": len(notification.alerts),
        "payload": _json(notification.payload),
        "alerts": _json([_alert_row(alert) for alert in alerts]),
        "received_at": received_at,
        "resolved": AlertStatus.RESOLVED.value,
        "pending": RecommendationState.PENDING.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(NOTIFICATION_STORE_SQL.as_string(connection.connection), params)
        rows = cursor.fetchall()
    group_id, notification_id = rows[0][0], rows[0][1]
    return StoredRows(
        group_id=group_id,
        notification_id=notification_id,
        # No alert row at all when every alert of the body belongs to another receiver (a NULL-padded row).
        alerts=tuple(UpsertedAlert(*row[2:]) for row in rows if row[2] is not None),
    )
