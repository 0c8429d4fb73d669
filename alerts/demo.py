"""Demo alerts for `make run` (`manage.py seed_demo_alerts`): what Alertmanager would post during an incident,
stored through the same parser and store as the webhook, so the worker recommends runbooks for them and
/alerts/ has something to show on a fresh machine. Labelled as demo: receiver ``demo-alertmanager``."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from alerts.intake import notification_parse
from alerts.models import AlertReceiver
from alerts.receivers import alert_receiver_create
from alerts.storage import alert_notification_store

DEMO_RECEIVER = "demo-alertmanager"

# (alertname, labels, summary, description, minutes since it started firing)
DEMO_ALERTS = [
    ("KubePodCrashLooping", {"namespace": "shop", "pod": "checkout-5c4d9b7f6-q8w2e", "severity": "critical"},
     "Pod shop/checkout is crash looping",
     "Pod shop/checkout-5c4d9b7f6-q8w2e is restarting 3.5 times / 10 minutes.", 4),
    ("NodeFilesystemSpaceFillingUp", {"instance": "10.0.3.17:9100", "severity": "warning"},
     "Filesystem is predicted to run out of space within the next 24 hours.",
     "Filesystem on /dev/nvme0n1p1 at 10.0.3.17:9100 has only 9.3% available space left and is filling up.", 13),
]


def demo_notification(*, alertname: str, labels: dict, summary: str, description: str, starts_at: dt.datetime):
    """One Alertmanager webhook body (version 4) with one firing alert."""
    return {
        "version": "4", "groupKey": f'{{}}:{{alertname="{alertname}"}}', "status": "firing", "receiver": "helper",
        "groupLabels": {"alertname": alertname}, "commonLabels": {"alertname": alertname, **labels},
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093", "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing", "labels": {"alertname": alertname, **labels},
            "annotations": {"summary": summary, "description": description},
            "startsAt": starts_at.isoformat().replace("+00:00", "Z"), "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
        }],
    }


def demo_alerts_ensure() -> int:
    """Store the demo alerts once (the demo receiver's existence says they were); returns how many now."""
    if AlertReceiver.objects.filter(name=DEMO_RECEIVER).exists():
        return 0
    receiver = alert_receiver_create(name=DEMO_RECEIVER).receiver  # its token is never shown: demo data only
    now = timezone.now()
    for alertname, labels, summary, description, minutes in DEMO_ALERTS:
        body = demo_notification(
            alertname=alertname, labels=labels, summary=summary, description=description,
            starts_at=now - dt.timedelta(minutes=minutes),
        )
        alert_notification_store(receiver=receiver, notification=notification_parse(body), received_at=now)
    return len(DEMO_ALERTS)
