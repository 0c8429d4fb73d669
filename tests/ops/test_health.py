"""Health endpoints for load balancers: /healthz and /readyz."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def test_request_id_is_echoed(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"


def test_healthz_is_json_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_database_pgvector_and_model(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["database"]["ok"] and body["checks"]["database"]["pgvector"]
    assert body["checks"]["embedding_model"]["ok"]


def test_readyz_is_503_when_the_model_cannot_load(client, monkeypatch):
    from runbooks import embeddings

    class Broken:
        model_name = "broken"
        dimensions = 384

        def embed_query(self, text):
            raise embeddings.EmbeddingError("Could not load the embedding model: file missing")

    monkeypatch.setattr(embeddings, "_embedder", Broken())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "file missing" in response.json()["checks"]["embedding_model"]["error"]


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
