"""Planted knowledge gaps for tests/analytics/test_gaps*.py, embedded with the real model.

Runbooks: "Disk full on a database host" (everyone) and "Renew an expired TLS certificate" (only the group
"secret"). Questions of 2026-01-05 .. 2026-01-18 that got no recommendation:

| topic        | questions | when                                    | signals                              |
| disk full    | 5         | spread over the two weeks               | no recommendation                    |
| certificates | 6         | 1 in the first week, 5 in the second    | no recommendation; 2 failed runs     |
| kafka lag    | 4         | 3 in the second week                    | presented a runbook nobody clicked   |
| one-off      | 1         | -                                       | no recommendation                    |
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from analytics.services.gaps import gap_vectors_refresh
from runbooks.embeddings import get_embedder
from runbooks.services import runbooks_embed
from tests.analytics.fixtures import event, make_log
from tests.factories import GroupFactory
from tests.runbooks.factories import RunbookFactory

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
END = dt.datetime(2026, 1, 19, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

DISK = [
    "disk full on the postgres host",
    "database server ran out of disk space",
    "no space left on device on db-01",
    "postgres volume is 100% full",
    "disk usage at 100 percent on the database machine",
]
CERTS = [
    "tls certificate expired on the load balancer",
    "ssl cert expired, browsers show a certificate error",
    "https certificate expiry on the ingress",
    "x509 certificate has expired for api.example.com",
    "renew the expired tls certificate on nginx",
    "certificate expired error from the load balancer",
]
KAFKA = [
    "kafka consumer lag keeps growing",
    "consumer group lag is very high on kafka",
    "kafka lag alert for the orders consumer",
    "kafka consumers are falling behind",
]
ONE_OFF = "how do I order a new laptop"


@dataclass
class Planted:
    disk_runbook: object
    cert_runbook: object
    kafka_runbook: object
    cert_logs: list


def plant(user) -> Planted:
    secret = GroupFactory(name="secret")
    disk = RunbookFactory(
        slug="db/disk-full",
        name="Disk full on a database host",
        description="The database host ran out of disk space: no space left on device.",
        steps=[{"title": "Find what fills the disk", "detail": "du -sh on the data volume", "command": "df -h"}],
    )
    cert = RunbookFactory(
        slug="tls/expired",
        name="Renew an expired TLS certificate",
        description="A TLS/SSL certificate expired on the load balancer or ingress: x509 expired errors.",
        steps=[{"title": "Renew the certificate", "detail": "certbot renew", "command": "certbot renew"}],
        allowed_groups=[secret],
    )
    kafka = RunbookFactory(slug="misc/printer", name="Printer out of paper", description="Refill the printer tray.")
    runbooks_embed()
    cert_logs = []
    for i, text in enumerate(DISK):
        make_log(user=user, created_at=START + (2 * i + 1) * DAY, strategy="no_solutions", query=text)
    for i, text in enumerate(CERTS):
        at = START + (2 * DAY if i == 0 else 8 * DAY + i * dt.timedelta(hours=20))
        log = make_log(user=user, created_at=at, strategy="no_solutions", query=text)
        cert_logs.append(log)
        if i in (1, 2):
            event(log, cert, "failed", at + dt.timedelta(minutes=5))
    for i, text in enumerate(KAFKA):
        at = START + (3 * DAY if i == 0 else 9 * DAY + i * DAY)
        make_log(user=user, created_at=at, strategy="single_solution", presented=[kafka], query=text)
    make_log(user=user, created_at=START + 4 * DAY, strategy="no_solutions", query=ONE_OFF)
    assert gap_vectors_refresh(embedder=get_embedder(), start=START, end=END) == 16
    assert timezone.now() > END + DAY  # every "not clicked" is settled
    return Planted(disk, cert, kafka, cert_logs)
