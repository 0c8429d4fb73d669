"""GET /metrics (Prometheus): never public, and it counts what operators alert on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token-123"


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN


def test_metrics_do_not_exist_without_a_token_configured(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Token {TOKEN}", f"Basic {TOKEN}", "Bearer"])
def test_metrics_need_the_bearer_token(client, metrics_on, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"aihelper_" not in response.content


def test_metrics_count_requests_answers_and_the_llm(client, auth_client, metrics_on, library, recommend_all,
                                                    offline):
    assert client.get("/healthz").status_code == 200
    assert auth_client.post("/api/ai-helper/query", {"message": "node disk is full"},
                            content_type="application/json").status_code == 200
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'aihelper_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/api/ai-helper/query"' in text
    assert 'aihelper_answers_total{degraded_reason="none",strategy=' in text
    assert 'aihelper_llm_call_duration_seconds_count{outcome="ok",provider="offline"}' in text
    for name in ("aihelper_llm_calls_in_flight", "aihelper_llm_queue_depth", "aihelper_clicks_recorded_total",
                 "aihelper_events_accepted_total", "aihelper_llm_cap_rejections_total", "aihelper_llm_errors_total"):
        assert name in text


def test_each_bind_address_keeps_its_own_metrics_directory():
    """gunicorn empties the metrics directory when it starts: a second server from the same checkout (another
    port) must not reset the first one's counters."""
    root = Path(__file__).resolve().parents[2]
    script = ("import os, runpy; runpy.run_path('gunicorn.conf.py'); print(os.environ['PROMETHEUS_MULTIPROC_DIR'])")
    dirs = []
    for bind in ("127.0.0.1:8000", "127.0.0.1:8001"):
        env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
        env["GUNICORN_BIND"] = bind
        out = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                             check=True)
        dirs.append(out.stdout.strip())
    assert dirs[0] != dirs[1]
    assert all(Path(d).parent == root / ".data" / "prometheus" for d in dirs), dirs
