"""Secrets and message bodies never reach the logs: the API key, passwords and the engineer's message
text are absent from every record (JSON format, INFO level, as in production) during a login, a
failed login, a chat answer through the real SDK, a degraded answer, a search and a streamed answer."""

from __future__ import annotations

import io
import logging

import pytest

from aihelper.core.logjson import JsonFormatter

pytestmark = pytest.mark.django_db

API_KEY = "sk-ant-test-SECRET-7f3a9c"
PASSWORD = "correct-horse-battery"
WRONG_PASSWORD = "Wr0ng-Secret-Pa55"
MESSAGE = "disk full on db-prod-7 XYZZY-4242 customer acme"


@pytest.fixture
def json_logs(settings):
    assert settings.LOG_LEVEL == "INFO" and settings.LOG_FORMAT == "json"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_no_secret_or_message_text_in_logs(client, user, library, recommend_all, fake_anthropic, settings, json_logs):
    settings.ANTHROPIC_API_KEY = API_KEY
    page = client.get("/accounts/login/")
    token = page.cookies["csrftoken"].value
    client.post("/accounts/login/", {"username": "alice", "password": WRONG_PASSWORD, "csrfmiddlewaretoken": token})
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD,
                                                "csrfmiddlewaretoken": token})
    assert response.status_code == 302

    assert client.post("/api/ai-helper/query", {"message": MESSAGE}, content_type="application/json").status_code == 200
    fake_anthropic.mode = "500"
    degraded = client.post("/api/ai-helper/query", {"message": MESSAGE + " again"}, content_type="application/json")
    assert degraded.json()["degraded"] is True
    fake_anthropic.mode = "stream"
    stream = client.post("/chat/stream", {"message": MESSAGE, "source": "widget"}, content_type="application/json")
    b"".join(stream.streaming_content)
    client.get("/runbooks/", {"q": MESSAGE})
    client.post("/api/ai-helper/query", {"message": MESSAGE, "session_id": "00000000-0000-0000-0000-000000000000"},
                content_type="application/json")  # a 404 is logged by django.request

    logs = json_logs.getvalue()
    assert '"logger": "aihelper.request"' in logs and "degraded answer" in logs  # the capture works
    assert fake_anthropic.requests and API_KEY in str(fake_anthropic.requests[0]["headers"])  # the key was used
    for secret in (API_KEY, PASSWORD, WRONG_PASSWORD, "XYZZY-4242", "db-prod-7"):
        assert secret not in logs, f"{secret!r} appears in the logs"
