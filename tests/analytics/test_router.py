"""ANALYTICS_DATABASE_URL sends analytics reads to the "analytics" alias; writes stay on default."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.db import connection

from aihelper.core.db_router import AnalyticsRouter, analytics_read_alias, analytics_reads_on
from analytics.models import RunbookStats

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db

SCRIPT = textwrap.dedent(
    """
    import datetime as dt
    import django
    django.setup()
    from django.db import connections
    from django.test.utils import CaptureQueriesContext
    from analytics.sql.common import MetricFilter
    from analytics.sql.metrics import log_summary

    now = dt.datetime.now(dt.UTC)
    with CaptureQueriesContext(connections["analytics"]) as replica, \\
         CaptureQueriesContext(connections["default"]) as primary:
        result = log_summary(MetricFilter(start=now - dt.timedelta(days=1), end=now), now=now).rates
    print(len(replica), len(primary), result.audit_logs)
    """
)


def test_analytics_queries_use_the_analytics_alias_when_configured():
    info = connection.connection.info  # the real parameters, embedded socket included
    url = f"postgresql://{info.user}@/{info.dbname}?host={info.host}&port={info.port}"
    env = {**os.environ, "ANALYTICS_DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "aihelper.settings"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    replica, primary, _ = result.stdout.split()
    assert int(replica) >= 1 and int(primary) == 0


def test_without_a_replica_everything_reads_default():
    assert analytics_read_alias() == "default"
    assert AnalyticsRouter().db_for_read(RunbookStats) == "default"


def test_router_never_writes_or_migrates_elsewhere(settings):
    router = AnalyticsRouter()
    assert router.db_for_write(RunbookStats) == "default"
    assert router.allow_migrate("analytics", "analytics") is False
    assert router.allow_migrate("default", "analytics") is True


def test_reads_can_be_pinned_to_default():
    with analytics_reads_on("default"):
        assert analytics_read_alias() == "default"
