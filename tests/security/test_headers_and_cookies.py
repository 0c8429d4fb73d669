"""Secure headers on pages, APIs, streams and errors; Secure/HttpOnly cookies and HSTS in production."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def _assert_secure_headers(response, what: str) -> None:
    csp = response.get("Content-Security-Policy", "")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, what
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, what
    assert response.get("X-Frame-Options") == "DENY", what
    assert response.get("X-Content-Type-Options") == "nosniff", what
    assert response.get("Referrer-Policy") == "same-origin", what


PAGES = ["/chat/", "/chat/{session_id}/", "/runbooks/", "/runbooks/?q=disk", "/runbooks/{runbook_id}/",
         "/runbooks/executions/{execution_id}/", "/api/docs/"]
APIS = ["/api/ai-helper/sessions/", "/api/ai-helper/sessions/{session_id}/messages/", "/api/schema/", "/healthz"]
ERRORS = [("/no-such-page/", 404), ("/runbooks/00000000-0000-0000-0000-000000000000/", 404),
          ("/api/ai-helper/sessions/00000000-0000-0000-0000-000000000000/messages/", 404),
          ("/api/analytics/metrics", 403), ("/healthz?x", 200)]


@pytest.mark.parametrize("path", PAGES + APIS)
def test_pages_and_apis(client, owner, path):
    alice, owned = owner
    client.force_login(alice)
    response = client.get(path.format(**owned.__dict__))
    assert response.status_code == 200, path
    _assert_secure_headers(response, path)


@pytest.mark.parametrize(("path", "status"), ERRORS)
def test_error_responses(client, owner, path, status):
    client.force_login(owner[0])
    response = client.get(path)
    assert response.status_code == status
    _assert_secure_headers(response, path)


def test_login_page_csrf_failure_405_400_and_500(owner, monkeypatch):
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    _assert_secure_headers(response, "login")
    response = client.post("/accounts/login/", {})
    assert response.status_code == 403  # no CSRF token
    _assert_secure_headers(response, "csrf failure")
    client.force_login(owner[0])
    response = client.put("/chat/")
    assert response.status_code == 403  # a PUT without a CSRF token is refused before its method is looked at
    with_token = Client(raise_request_exception=False)
    with_token.force_login(owner[0])
    response = with_token.put("/chat/")
    assert response.status_code == 405
    _assert_secure_headers(response, "405")
    response = client.post("/api/ai-helper/events", "{", content_type="application/json")
    assert response.status_code == 400  # malformed JSON is refused before the CSRF check, changing nothing
    _assert_secure_headers(response, "400")
    from aihelper.chat import views

    monkeypatch.setattr(views, "chat_session_list", lambda **kwargs: 1 / 0)
    response = client.get("/chat/")
    assert response.status_code == 500
    _assert_secure_headers(response, "500")
    assert b"ZeroDivisionError" not in response.content  # no debug page in production


def test_an_unexpected_error_under_the_api_is_the_json_envelope(owner, monkeypatch):
    """A bug behind an API (never expected, always logged) still answers in the documented error envelope, not
    Django's HTML page, and gives nothing away."""
    from aihelper.chat import apis

    monkeypatch.setattr(apis, "chat_session_list", lambda **kwargs: 1 / 0)
    client = Client(raise_request_exception=False)
    client.force_login(owner[0])
    response = client.get("/api/ai-helper/sessions/")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "server_error" and "logged" in body["detail"]
    assert "ZeroDivisionError" not in response.content.decode()
    _assert_secure_headers(response, "api 500")


def test_streamed_answer(client, owner):
    client.force_login(owner[0])
    response = client.post("/chat/stream", {"message": "disk full"}, content_type="application/json")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    _assert_secure_headers(response, "stream")
    assert response["Cache-Control"] == "no-cache"
    assert "event: done" in b"".join(response.streaming_content).decode()


PRODUCTION_PROBE = """
import json
from django.conf import settings
from django.test import Client
client = Client()
secure = client.get("/accounts/login/", secure=True)
plain = client.get("/accounts/login/")
cookie = secure.cookies["csrftoken"]
print(json.dumps({
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "SESSION_COOKIE_HTTPONLY": settings.SESSION_COOKIE_HTTPONLY,
    "SESSION_COOKIE_SAMESITE": settings.SESSION_COOKIE_SAMESITE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "DEBUG": settings.DEBUG,
    "csrf_cookie_secure": bool(cookie["secure"]),
    "csrf_cookie_samesite": cookie["samesite"],
    "hsts": secure.get("Strict-Transport-Security", ""),
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location", ""),
}))
"""


def test_production_cookies_are_secure_and_http_only():
    """A separate process with the production environment (HTTPS=1, DEBUG=0), as the server would start."""
    env = {**os.environ, "DEBUG": "0", "HTTPS": "1", "SECRET_KEY": secrets.token_urlsafe(50),
           "ALLOWED_HOSTS": "testserver", "STATIC_MANIFEST": "0", "LOG_LEVEL": "WARNING"}
    env.pop("SECURE_COOKIES", None)
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", PRODUCTION_PROBE], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["DEBUG"] is False
    assert probe["SESSION_COOKIE_SECURE"] and probe["SESSION_COOKIE_HTTPONLY"] and probe["CSRF_COOKIE_SECURE"]
    assert probe["SESSION_COOKIE_SAMESITE"] == "Lax" and probe["csrf_cookie_samesite"] == "Lax"
    assert probe["csrf_cookie_secure"]
    assert "max-age=31536000" in probe["hsts"] and "includeSubDomains" in probe["hsts"]
    assert probe["plain_status"] == 301 and probe["plain_location"].startswith("https://")


def test_session_cookie_of_a_real_login_is_http_only(client, owner, settings):
    settings.SESSION_COOKIE_SECURE = True
    page = client.get("/accounts/login/")
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct-horse-battery",
                                                "csrfmiddlewaretoken": page.cookies["csrftoken"].value})
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
