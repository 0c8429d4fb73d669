"""A small runbook corpus with known answers, embedded through the real services."""

from __future__ import annotations

CORPUS = [
    {
        "slug": "t/diskfull",
        "name": "NodeDiskAlmostFull",
        "description": "A filesystem on a node is almost out of free space; writes will start to fail.",
        "tags": ["node", "disk", "filesystem"],
        "steps": [{"title": "Find large files", "detail": "", "command": "du -xh / | sort -h | tail"}],
    },
    {
        "slug": "t/podcrash",
        "name": "PodCrashLooping",
        "description": "A pod container keeps restarting and is in CrashLoopBackOff.",
        "tags": ["kubernetes", "pod", "crashloop"],
        "steps": [{"title": "Read the previous logs", "detail": "", "command": "kubectl logs --previous POD"}],
    },
    {
        "slug": "t/certexpiry",
        "name": "TLSCertificateExpiringSoon",
        "description": "A TLS certificate served by the ingress expires in less than 7 days.",
        "tags": ["tls", "certificate", "ingress"],
        "steps": [{"title": "Renew with cert-manager", "detail": "", "command": "cmctl renew CERT"}],
    },
    {
        "slug": "t/dbreplication",
        "name": "DatabaseReplicationLagHigh",
        "description": "The database replica is far behind the primary; reads from it return stale data.",
        "tags": ["database", "replication", "lag"],
        "steps": [
            {
                "title": "Check replica status",
                "detail": "",
                "command": "psql -c 'select now() - pg_last_xact_replay_timestamp()'",
            }
        ],
    },
]

KNOWN_ANSWERS = [
    ("Pod payments/api-7f9 is crash looping and restarting every minute", "t/podcrash"),
    ("Filesystem /var on node worker-3 is almost full, 2% space left", "t/diskfull"),
    ("The TLS certificate for shop.example.com expires in 3 days", "t/certexpiry"),
    ("Replication lag on the orders database replica is 900 seconds", "t/dbreplication"),
]


def load_corpus(capture, *, groups_for=None):
    from runbooks.services import runbook_upsert

    groups_for = groups_for or {}
    with capture(execute=True):
        for item in CORPUS:
            data = {key: value for key, value in item.items() if key != "slug"}
            runbook_upsert(slug=item["slug"], data=data, allowed_groups=groups_for.get(item["slug"], []))
