"""Retention for alert intake (docs/operations.md, "Retention"): the webhook bodies kept as received
(``AlertNotification.payload``) older than the retention period are replaced by a marker. The rows stay (which
receiver sent how many alerts of which status, when), and so do the alerts parsed from them, their
recommendations, presentations and outcomes: the alerts page and every alert metric read those. Safe to run
again."""

from __future__ import annotations

import datetime as dt

from aihelper.core.redaction import RETENTION_MARKER
from alerts.models import AlertNotification

REMOVED_PAYLOAD = {"retention": RETENTION_MARKER}


def alert_payloads_blank_before(*, cutoff: dt.datetime) -> int:
    """Replace the bodies received before ``cutoff``; returns how many were replaced (not those already)."""
    return (
        AlertNotification.objects.filter(received_at__lt=cutoff)
        .exclude(payload=REMOVED_PAYLOAD)
        .update(payload=REMOVED_PAYLOAD)
    )
