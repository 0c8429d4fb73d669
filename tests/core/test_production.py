"""Production mode: deploy checks, security headers, static files, API schema."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def test_check_deploy_is_clean_in_production_settings():
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},  # set by browser tests
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "HTTPS": "1",
        "ALLOWED_HOSTS": "helper.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://helper.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_pages_carry_security_headers(auth_client):
    response = auth_client.get("/runbooks/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Request-ID"]


def test_openapi_schema_describes_every_endpoint(auth_client):
    response = auth_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    for path in ("/api/ai-helper/track-choice", "/api/ai-helper/events", "/api/ai-helper/query"):
        assert path in schema["paths"], sorted(schema["paths"])
    track = schema["paths"]["/api/ai-helper/track-choice"]["post"]["responses"]
    assert {"201", "200", "400", "404", "409", "413", "422", "429"} <= set(track)
    assert "TrackChoiceApiInput" in schema["components"]["schemas"]


def test_interactive_docs_are_served_without_a_cdn(auth_client):
    response = auth_client.get("/api/docs/")
    assert response.status_code == 200
    assert b"cdn" not in response.content.lower()


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
