"""Under ASGI (as under gunicorn's uvicorn workers) Django's middleware hooks run in the event loop, and only
a hook that will reach the database crosses to the request's thread (aihelper/core/loop_middleware.py).

Driven through ``aihelper.asgi.application`` itself, the production entry point: a login (the session is saved
on a thread), the logged-in page after it, a refused CSRF check, and /healthz answered without any thread.
"""

from __future__ import annotations

import asyncio
import re
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from asgiref import sync
from asgiref.sync import async_to_sync
from django.contrib.messages.storage.fallback import FallbackStorage
from django.http import HttpResponse
from django.test import RequestFactory

from aihelper.core import loop_middleware
from tests.factories import UserFactory

PASSWORD = "a-long-test-password-1"


def _asgi(method: str, path: str, *, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, bytes]:
    from aihelper.asgi import application

    sent: list[dict] = []

    async def scenario():
        received = False

        async def receive():
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # the client stays connected

        async def send(message):
            sent.append(message)

        raw = [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())]
        raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": raw, "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
        await asyncio.wait_for(application(scope, receive, send), timeout=30)

    async_to_sync(scenario)()
    start = next(m for m in sent if m["type"] == "http.response.start")
    response_headers: dict[str, list[str]] = {}
    for name, value in start["headers"]:
        response_headers.setdefault(name.decode().lower(), []).append(value.decode())
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], response_headers, content


def _cookies(headers: dict) -> dict[str, str]:
    jar = SimpleCookie()
    for line in headers.get("set-cookie", []):
        jar.load(line)
    return {name: morsel.value for name, morsel in jar.items()}


@pytest.fixture
def thread_hops(monkeypatch):
    """The names of the functions a request handed from the event loop to a thread."""
    hops: list[str] = []
    original = sync.SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting)
    return hops


@pytest.fixture
def asgi_request_start():
    """As aihelper.asgi leaves it: Django's test clients reconnect the request-start receivers after each
    request, so a test that follows one must not rely on the disconnect done at import."""
    from django.core.signals import request_started
    from django.db import close_old_connections, reset_queries

    import aihelper.asgi  # noqa: F401 - disconnects them

    request_started.disconnect(close_old_connections)
    request_started.disconnect(reset_queries)
    yield
    request_started.connect(close_old_connections)
    request_started.connect(reset_queries)


def test_healthz_is_answered_in_the_event_loop_without_any_thread(asgi_request_start, thread_hops):
    status, headers, content = _asgi("GET", "/healthz")
    assert status == 200 and content == b'{"status": "ok"}'
    # Every middleware still ran: its headers are on the answer.
    assert "x-request-id" in headers and headers["x-frame-options"] == ["DENY"]
    assert "content-security-policy" in headers and headers["x-content-type-options"] == ["nosniff"]
    # Django's MiddlewareMixin would have crossed to a thread 17 times (twice per hook, and the start signal).
    before_the_answer = [hop for hop in thread_hops if "close" not in hop]
    assert before_the_answer == []


@pytest.mark.django_db(transaction=True)
def test_a_login_under_asgi_saves_the_session_on_a_thread_and_the_next_page_knows_the_user(thread_hops):
    UserFactory(username="carol", password=PASSWORD)
    status, headers, page = _asgi("GET", "/accounts/login/")
    assert status == 200
    csrf = _cookies(headers)["csrftoken"]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()

    thread_hops.clear()
    form = urlencode({"username": "carol", "password": PASSWORD, "csrfmiddlewaretoken": token}).encode()
    status, headers, _ = _asgi("POST", "/accounts/login/", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf}",
        "Referer": "http://testserver/accounts/login/"})
    assert status == 302, "the login was accepted"
    session = _cookies(headers)["sessionid"]
    assert "SessionMiddleware.process_response" in thread_hops, "the modified session was saved on a thread"

    status, _, page = _asgi("GET", "/chat/", headers={"Cookie": f"sessionid={session}; csrftoken={csrf}"})
    assert status == 200 and b"carol" in page


@pytest.mark.django_db(transaction=True)
def test_a_form_post_without_its_csrf_token_is_refused_under_asgi():
    status, _, page = _asgi("POST", "/accounts/login/", body=b"username=x&password=y",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403 and b"CSRF" in page


@pytest.mark.django_db(transaction=True)
def test_a_page_that_reads_the_session_without_changing_it_does_not_save_it(thread_hops):
    UserFactory(username="dave", password=PASSWORD)
    status, headers, page = _asgi("GET", "/accounts/login/")
    csrf = _cookies(headers)["csrftoken"]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    form = urlencode({"username": "dave", "password": PASSWORD, "csrfmiddlewaretoken": token}).encode()
    _, headers, _ = _asgi("POST", "/accounts/login/", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf}",
        "Referer": "http://testserver/accounts/login/"})
    session = _cookies(headers)["sessionid"]

    thread_hops.clear()
    status, headers, _ = _asgi("GET", "/runbooks/", headers={"Cookie": f"sessionid={session}"})
    assert status == 200
    assert "SessionMiddleware.process_response" not in thread_hops
    assert "Cookie" in headers["vary"][0], "the page depended on the session and says so"


def test_messages_cross_to_a_thread_only_when_there_are_messages_to_store():
    middleware = loop_middleware.MessageMiddleware(lambda request: HttpResponse())
    request = RequestFactory().get("/")
    request.session = {}
    request._messages = FallbackStorage(request)
    assert middleware.response_needs_thread(request, HttpResponse()) is False
    request._messages.add(20, "Saved.")
    assert middleware.response_needs_thread(request, HttpResponse()) is True


def test_with_the_csrf_secret_in_the_session_its_hooks_stay_on_threads(settings):
    async def view(request):
        return HttpResponse()

    settings.CSRF_USE_SESSIONS = True
    assert loop_middleware.CsrfViewMiddleware(view).runs_in_loop() is False
    settings.CSRF_USE_SESSIONS = False
    assert loop_middleware.CsrfViewMiddleware(view).runs_in_loop() is True


def test_the_deploy_check_still_wants_security_clickjacking_and_csrf_middleware(settings):
    from aihelper.core.middleware_checks import security_middleware_check

    assert security_middleware_check() == []
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if not path.endswith(".CsrfViewMiddleware")]
    assert [message.id for message in security_middleware_check()] == ["ops.W003"]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.csrf.CsrfViewMiddleware"]
    assert security_middleware_check() == []
