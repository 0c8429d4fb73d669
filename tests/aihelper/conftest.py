"""Fixtures for the chat tests: a small embedded runbook library and the fake Anthropic server."""

from __future__ import annotations

import pytest

from tests.fake_anthropic import FakeAnthropic

DBA_GROUP = "dba"

LIBRARY = [
    dict(
        slug="test/node-disk-full", name="NodeDiskFull",
        description="The root filesystem of a Kubernetes node is almost full and pods are being evicted.",
        tags=["disk", "node", "kubernetes"],
        steps=[
            {"title": "Check disk usage on the node", "detail": "", "command": "df -h /"},
            {"title": "Find the largest directories", "detail": "", "command": "du -xh / | sort -h | tail"},
            {"title": "Prune unused container images", "detail": "", "command": "crictl rmi --prune"},
        ],
    ),
    dict(
        slug="test/postgres-replication-lag", name="PostgresReplicationLag",
        description="A PostgreSQL replica is falling behind the primary; replication lag grows.",
        tags=["postgres", "replication", "database"],
        steps=[{"title": "Check replication lag", "detail": "",
                "command": "SELECT now() - pg_last_xact_replay_timestamp();"}],
    ),
    dict(
        slug="test/web-5xx", name="WebFrontend5xxErrors",
        description="The web frontend returns many HTTP 5xx errors to customers.",
        tags=["http", "5xx", "web"], is_automated=True,
        steps=[{"title": "Check the error ratio", "detail": "", "command": "kubectl logs deploy/web | grep ' 5'"}],
    ),
]
RESTRICTED = dict(
    slug="test/secret-postgres-failover", name="SecretPostgresFailover",
    description="Promote a PostgreSQL replica when replication lag is huge and the primary database is lost.",
    tags=["postgres", "replication", "failover", "database"],
    steps=[{"title": "Promote the replica", "detail": "", "command": "pg_ctl promote -D /secret/path"}],
)


@pytest.fixture
def library(db):
    """Embedded runbooks: three visible to everyone, one restricted to the dba group."""
    from runbooks.services import runbooks_embed
    from tests.factories import GroupFactory
    from tests.runbooks.factories import RunbookFactory

    runbooks = {data["slug"]: RunbookFactory(**data) for data in LIBRARY}
    dba = GroupFactory(name=DBA_GROUP)
    runbooks[RESTRICTED["slug"]] = RunbookFactory(**RESTRICTED, allowed_groups=[dba])
    runbooks_embed()
    return runbooks


@pytest.fixture
def recommend_all(settings):
    """Every search hit in the top three is recommended, whatever today's retrieval scores are."""
    settings.AIHELPER_CONFIDENCE_THRESHOLD = 0.0
    settings.AIHELPER_MAX_RECOMMENDED = 3


@pytest.fixture
def offline(settings):
    settings.LLM_PROVIDER = "offline"
    settings.ANTHROPIC_API_KEY = ""


@pytest.fixture
def fake_anthropic(settings):
    server = FakeAnthropic(
        text="Follow [NodeDiskFull](/runbooks/{id}/) first.", sleep=1.5
    ).start()
    settings.LLM_PROVIDER = "anthropic"
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = server.url
    settings.ANTHROPIC_MODEL = "claude-test"
    settings.ANTHROPIC_TIMEOUT = 0.5
    settings.ANTHROPIC_MAX_RETRIES = 1
    yield server
    server.stop()
