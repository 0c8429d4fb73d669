"""CSRF: every route that accepts a session-authenticated POST refuses it without the token (403) and
accepts the same POST with the token (not 403). The routes are found by walking the URLconf and
posting to each with a valid token: whatever does not answer 405 takes POSTs and is checked."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.security.test_object_access import _route_names

pytestmark = pytest.mark.django_db

# Every route of the site except Django's admin, of which the login form and one change form are sampled.
ROUTES = sorted(
    {name for _, name in _route_names(__import__("django.urls").urls.get_resolver()) if not name.startswith("admin:")}
    | {"admin:login", "admin:runbooks_runbook_add"}
)
KWARGS = {
    "chat_session": {"session_id": "session_id"},
    "api_ai_helper_session_messages": {"session_id": "session_id"},
    "runbooks:detail": {"pk": "restricted_id"},
    "runbooks:edit": {"pk": "restricted_id"},
    "runbooks:execution_start": {"pk": "restricted_id"},
    "runbooks:execution": {"pk": "execution_id"},
    "runbooks:execution_step": {"pk": "execution_id", "index": 0},
    "runbooks:execution_finish": {"pk": "execution_id"},
    "alerts:ask": {"alert_id": "alert_id"},
}
# Webhooks authenticated by a bearer token only (CSRF-exempt by design): a session gives them no authority,
# so a forged cross-site POST with the user's cookie is refused like any request without the token.
BEARER_ONLY = {"alerts_webhook:alertmanager", "alerts_webhook:grafana"}


def _url(name: str, owned) -> str:
    if not name or "/" in name:  # an unnamed pattern: its route is its name
        return "/" + name
    kwargs = {key: getattr(owned, value) if isinstance(value, str) else value
              for key, value in KWARGS.get(name, {}).items()}
    return reverse(name, kwargs=kwargs)


def _post(client, url, **extra):
    if url.startswith("/api/") or url == "/chat/stream":
        return client.post(url, "{}", content_type="application/json", **extra)
    return client.post(url, {"outcome": "succeeded", "done": "1"}, **extra)


@pytest.mark.parametrize("name", ROUTES)
def test_post_without_the_csrf_token_is_403(owner, name):
    alice, owned = owner
    alice.is_staff = alice.is_superuser = True  # so the admin forms are reachable too
    alice.save()
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/chat/")  # sets the csrftoken cookie as a browser would get it
    token = client.cookies["csrftoken"].value
    url = _url(name, owned)

    with_token = _post(client, url, HTTP_X_CSRFTOKEN=token)
    if with_token.status_code == 405:
        return  # a GET-only route: nothing to forge
    if name in BEARER_ONLY:
        assert with_token.status_code == 401 and _post(client, url).status_code == 401, url
        return
    assert with_token.status_code != 403, (url, with_token.status_code)

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    without = _post(client, url)
    assert without.status_code == 403, (url, without.status_code)
    wrong = _post(client, url, HTTP_X_CSRFTOKEN="x" * 64)
    assert wrong.status_code == 403, (url, wrong.status_code)


def test_token_authenticated_api_clients_need_no_csrf_token(owner):
    """No cookie, no ambient authority: a forged cross-site request cannot carry the token header."""
    from rest_framework.authtoken.models import Token

    alice, owned = owner
    client = Client(enforce_csrf_checks=True)
    token = Token.objects.create(user=alice)
    response = client.post("/api/ai-helper/track-choice", "{}", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 400


def test_the_chat_stream_says_what_failed_in_json_and_a_form_gets_the_page(owner):
    """The stream is posted by the page's script as JSON: a missing token is a JSON 403 it can show, not an HTML
    page it cannot read. A browser form still gets Django's page."""
    alice, _ = owner
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/chat/stream", '{"message": "disk full"}', content_type="application/json")
    assert response.status_code == 403 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "csrf_failed" and "X-CSRFToken" in body["detail"]
    assert body["detail"].startswith("CSRF check failed: CSRF cookie not set. ")
    form = client.post("/accounts/login/", {"username": "alice", "password": "x"}, HTTP_ACCEPT="text/html")
    assert form.status_code == 403 and form["Content-Type"].startswith("text/html")


def test_the_markdown_preview_refuses_a_forged_post_in_json_whatever_the_client_accepts(owner):
    """The editor's preview answers JSON: its CSRF failure is the JSON envelope even for a client that sends no
    JSON and accepts anything (fetch's default Accept: */*), not Django's HTML page that script cannot read."""
    alice, _ = owner
    alice.is_staff = True
    alice.save()
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("runbooks:authoring_preview"), {"body_markdown": "# x"}, HTTP_ACCEPT="*/*")
    assert response.status_code == 403 and response["Content-Type"] == "application/json"
    assert response.json()["error"] == "csrf_failed"


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("get", "/chat/stream", "POST"),
    ("put", "/chat/stream", "POST"),
    ("get", "/runbooks/authoring/preview/", "POST"),
    ("post", "/healthz", "GET"),
    ("delete", "/readyz", "GET"),
])
def test_a_json_endpoint_outside_the_api_answers_a_wrong_method_in_json(owner, method, path, allowed):
    alice, _ = owner
    client = Client()
    client.force_login(alice)
    response = getattr(client, method)(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 405 and response["Content-Type"] == "application/json"
    assert response["Allow"] == allowed
    body = response.json()
    assert body["error"] == "method_not_allowed" and f"use {allowed}" in body["detail"], body
