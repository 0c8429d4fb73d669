"""Regressions found in review: production static files, NUL characters, odd stream input, health probes."""

import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from audit.models import RunbookInteractionEvent
from runbooks.selectors import _pgvector_has_iterative_scan
from tests.factories import RunbookFactory

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.django_db


def test_collectstatic_with_the_production_manifest_storage_succeeds(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("STATIC_MANIFEST", "DJANGO_ALLOW_ASYNC_UNSAFE")},
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    assert "vendor/chartjs/chart.umd.js" in manifest["paths"]


def test_nul_characters_in_event_json_are_rejected_and_the_rest_of_the_batch_is_kept(auth_client):
    runbook = RunbookFactory()

    def event(**extra):
        return {"event_id": str(uuid.uuid4()), "event_type": "viewed_detail", "runbook_id": str(runbook.pk),
                "source": "direct", "client_timestamp": timezone.now().isoformat(), **extra}

    good = event()
    response = auth_client.post(
        "/api/ai-helper/events",
        json.dumps({"events": [good, event(metadata={"k": "a\u0000b"}), event(page_context={"a\u0000": 1})]}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["accepted"] == [good["event_id"]]
    assert [item["index"] for item in body["rejected"]] == [1, 2]
    assert "NUL" in json.dumps(body["rejected"])
    assert RunbookInteractionEvent.objects.count() == 1


@pytest.mark.parametrize("source", [{}, ["widget"], 7, None])
def test_stream_with_a_non_text_source_still_answers(auth_client, source):
    response = auth_client.post("/chat/stream", json.dumps({"message": "disk is full", "source": source}),
                                content_type="application/json")
    assert response.status_code == 200
    assert b"event: done" in b"".join(response.streaming_content)


def test_health_probes_are_not_redirected_to_https_in_production():
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "c = Client(SERVER_NAME='helper.example.com')\n"
        "print(c.get('/healthz').status_code, c.get('/accounts/login/').status_code)\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_SETTINGS_MODULE": "aihelper.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "HTTPS": "1",
        "ALLOWED_HOSTS": "helper.example.com",
    }
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["200", "301"]


def test_iterative_scan_support_is_detected_from_the_installed_pgvector():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        major, minor = (int(part) for part in cursor.fetchone()[0].split(".")[:2])
    assert _pgvector_has_iterative_scan("default") == ((major, minor) >= (0, 8))
