"""Bodies over the limit: the documented 413 on every route, decided before the body is read (docs/security.md
section 6). In-process for every route, method and content type; over real HTTP against Django's threaded
server and gunicorn (the production server) with 1 MB, 20 MB and chunked bodies; never an ERROR log line."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIHandler
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import URLResolver, get_resolver

from aihelper.core.body_limits import BodyLimitMiddleware

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CONVERTERS = {"uuid": str(uuid.uuid4()), "int": "1", "slug": "x", "str": "x", "path": "x"}


def _routes(patterns=None, prefix: str = "/"):
    """A concrete path for every URL pattern of the project (regex-only admin catch-alls aside)."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + route)
        elif "(?P" not in route and "^" not in route:
            yield re.sub(r"<(?:(\w+):)?\w+>", lambda match: CONVERTERS[match.group(1) or "str"], prefix + route)


ROUTES = sorted(set(_routes()))


@pytest.fixture
def no_error_logs(caplog):
    caplog.set_level(logging.INFO)
    yield caplog
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


def _assert_refused(response, *, json_body: bool, status: int = 413) -> None:
    content = response.content if hasattr(response, "content") else response
    assert response.status_code == status, (response.status_code, content[:200])
    if json_body:
        assert response["Content-Type"] == JSON
        body = json.loads(content)
        assert body["error"] == ("payload_too_large" if status == 413 else body["error"]) and body["detail"]
    else:
        assert response["Content-Type"].startswith("text/html")
        assert b"Traceback" not in content
    # Answered from process_view: the response passes back through every middleware, headers included.
    assert response["X-Content-Type-Options"] == "nosniff" and response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_the_route_list_covers_the_apis_the_stream_and_the_forms():
    assert {"/api/ai-helper/query", "/api/ai-helper/events", "/api/ai-helper/track-choice",
            "/api/ai-helper/answer-feedback", "/chat/stream", "/chat/send", "/accounts/login/",
            "/admin/runbooks/runbook/add/"} <= set(ROUTES)
    assert len(ROUTES) > 100


# Plain views that answer JSON (api_errors.json_view): their errors are JSON whatever the client sent.
JSON_VIEWS = {"/chat/stream", "/healthz", "/readyz", "/runbooks/authoring/preview/"}


def test_every_route_refuses_a_1_mb_body_with_413_before_reading_it(client, user, no_error_logs):
    client.force_login(user)
    body = b"a" * (MB + 1)  # one byte over the largest limit (the alert webhooks' 1 MiB)
    failures = []
    for path in ROUTES:
        for method in ("post", "put", "patch"):
            for content_type in (JSON, FORM):
                response = getattr(client, method)(path, body, content_type=content_type)
                try:
                    _assert_refused(response, json_body=path.startswith("/api/") or content_type == JSON
                                    or path in JSON_VIEWS)
                except AssertionError as exc:
                    failures.append((method, path, content_type, str(exc)[:200]))
    assert failures == []


def test_the_413_says_the_size_and_the_limit_in_words(client):
    response = client.post("/api/ai-helper/events", b"a" * MB, content_type=JSON)
    assert response.json() == {
        "error": "payload_too_large",
        "detail": f"The request body is {MB} bytes; the limit is {settings.API_MAX_BODY_BYTES} bytes.",
    }
    page = client.post("/chat/send", b"a" * MB, content_type=FORM)
    assert b"<title>Request body too large (413)</title>" in page.content
    assert f"the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes".encode() in page.content


def test_the_limits_are_exact(client, user, no_error_logs):
    client.force_login(user)
    api_limit, form_limit = settings.API_MAX_BODY_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    at_limit = client.post("/api/ai-helper/events", b" " * api_limit, content_type=JSON)
    assert at_limit.status_code == 400 and "empty" in at_limit.json()["detail"]  # read and parsed: not 413
    assert client.post("/api/ai-helper/events", b" " * (api_limit + 1), content_type=JSON).status_code == 413
    # The chat stream posts JSON outside /api/: held to Django's limit, as documented.
    assert client.post("/chat/stream", b" " * form_limit, content_type=JSON).status_code == 400
    _assert_refused(client.post("/chat/stream", b" " * (form_limit + 1), content_type=JSON), json_body=True)
    message = "message=" + "a" * (form_limit - len("message="))
    assert client.post("/chat/send", message, content_type=FORM).status_code == 400  # the form's own limit
    assert client.post("/chat/send", message + "a", content_type=FORM).status_code == 413


def test_a_lower_django_limit_lowers_the_api_limit(client, user, settings):
    # Whichever limit is lower answers first, so Django's RequestDataTooBig cannot surface behind it.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    client.force_login(user)
    response = client.post("/chat/stream", json.dumps({"message": "a" * 4000}), content_type=JSON)
    _assert_refused(response, json_body=True)
    assert "the limit is 2048 bytes" in response.json()["detail"]


def _chunked(client, path: str, body: bytes, *, terminated: bool = True, **extra):
    """A body without Content-Length, as a server that de-chunks it (gunicorn) hands it to Django."""
    stream = io.BytesIO(body)
    environ = {"CONTENT_LENGTH": "", "CONTENT_TYPE": JSON, "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream}
    if terminated:
        environ["wsgi.input_terminated"] = True
    return client.generic("POST", path, b"", content_type=JSON, **environ, **extra), stream


def test_a_chunked_body_over_the_limit_is_413_after_reading_one_byte_past_it(client, no_error_logs):
    response, stream = _chunked(client, "/api/ai-helper/events", b"a" * (20 * MB))
    _assert_refused(response, json_body=True)
    assert stream.tell() == settings.API_MAX_BODY_BYTES + 1


def test_a_chunked_body_within_the_limit_reaches_the_view(client, user):
    client.force_login(user)
    response, _ = _chunked(client, "/api/ai-helper/events", json.dumps({"events": 5}).encode())
    assert response.status_code == 400
    assert "Expected a list" in response.json()["fields"]["events"][0]  # read: an empty body is "required"


def test_a_chunked_body_the_server_cannot_frame_is_411(client, no_error_logs):
    response, stream = _chunked(client, "/api/ai-helper/events", b"{}", terminated=False)
    assert response.status_code == 411 and response.json()["error"] == "length_required"
    assert stream.tell() == 0


@pytest.mark.parametrize("path", ["/accounts/login/", "/chat/send", "/admin/login/"])
def test_a_form_with_too_many_fields_is_400_in_words(user, path, no_error_logs):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    fields = "&".join(f"f{i}=x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.post(path, fields, content_type=FORM)
    _assert_refused(response, json_body=False, status=400)
    assert f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields".encode() in response.content


def test_request_data_too_big_raised_anywhere_in_a_view_is_the_413():
    middleware = BodyLimitMiddleware(lambda request: None)
    api = middleware.process_exception(RequestFactory().post("/api/ai-helper/query"), RequestDataTooBig())
    assert api.status_code == 413 and json.loads(api.content)["error"] == "payload_too_large"
    page = middleware.process_exception(RequestFactory().post("/chat/send", {"a": "b"}), RequestDataTooBig())
    assert page.status_code == 413 and page["Content-Type"].startswith("text/html")
    assert middleware.process_exception(RequestFactory().get("/"), ValueError()) is None


def _asgi(path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict, bytes]:
    """One request through Django's ASGI handler, the body in 64 KiB messages."""
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected until the response is sent


    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    async_to_sync(ASGIHandler())(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_asgi_bodies_without_a_length_are_413(no_error_logs):
    # Chunked: read from Django's buffer up to one byte past the limit, before authentication.
    chunked = [(b"content-type", JSON.encode()), (b"transfer-encoding", b"chunked")]
    status, headers, body = _asgi("/api/ai-helper/events", b"a" * (20 * MB), chunked)
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    # No length and no Transfer-Encoding (HTTP/2): Django's own check raises RequestDataTooBig when the form
    # is parsed, answered as the 413 page.
    status, headers, body = _asgi("/accounts/login/", b"a=" + b"b" * MB, [(b"content-type", FORM.encode())])
    assert status == 413 and headers["Content-Type"].startswith("text/html"), body[:200]
    assert b"Request body too large (413)" in body


# --- Over real HTTP ----------------------------------------------------------------------------------------


def _exchange(port: int, path: str, body: bytes, *, content_type: str = JSON, declared: int | None = None,
              chunked: bool = False, headers: str = "") -> tuple[int, str, bytes]:
    """POST over a plain socket; the body is sent as far as the server reads it, then the answer is read.

    ``declared``: the Content-Length to promise (default: the body's length). A server that answers early
    closes what it will not read, so sending may fail midway: that is fine, the answer is already on its way.
    """
    length = len(body) if declared is None else declared
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n{headers}"
            f"{framing}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(head)
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        started = time.monotonic()
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert time.monotonic() - started < 10
        return response.status, response.getheader("Content-Type"), response.read()


def _json(answer: tuple[int, str, bytes]) -> tuple[int, dict]:
    status, content_type, body = answer
    assert content_type == JSON, (status, content_type, body[:200])
    return status, json.loads(body)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [MB, 20 * MB])
def test_live_server_answers_413_json_to_big_bodies(live_server, size, no_error_logs):
    port = live_server.thread.port
    for path in ("/api/ai-helper/events", "/api/ai-helper/query", "/chat/stream"):
        status, body = _json(_exchange(port, path, b"a" * size))
        assert status == 413 and body["error"] == "payload_too_large", (path, status, body)
    status, content_type, body = _exchange(port, "/chat/send", b"message=" + b"a" * size, content_type=FORM)
    assert status == 413 and content_type.startswith("text/html") and b"Traceback" not in body


@pytest.mark.django_db(transaction=True)
def test_live_server_answers_before_the_body_is_sent(live_server, no_error_logs):
    port = live_server.thread.port
    # Headers promising 20 MB, then 1 KiB: the answer comes without the rest (read within 10 s).
    status, body = _json(_exchange(port, "/api/ai-helper/events", b"a" * 1024, declared=20 * MB))
    assert status == 413 and body["error"] == "payload_too_large"
    # Django's development server cannot de-chunk a body: 411, never a silently empty body.
    status, body = _json(_exchange(port, "/api/ai-helper/events", b"a" * MB, chunked=True))
    assert status == 411 and body["error"] == "length_required"


# gunicorn, as `make serve` runs it: it de-chunks bodies, so the chunked path reads at most limit + 1 bytes.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn():
    port = _free_port()
    env = {**os.environ, "EMBEDDED_PG_DBNAME": connection.settings_dict["NAME"], "GUNICORN_BIND": f"127.0.0.1:{port}",
           "GUNICORN_WORKERS": "1", "STATIC_MANIFEST": "0", "LOG_LEVEL": "INFO", "LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "aihelper.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert process.poll() is None and time.time() < deadline, "gunicorn did not start"
                time.sleep(0.3)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_gunicorn_refuses_big_and_chunked_bodies_without_an_error_line(gunicorn, user):
    from rest_framework.authtoken.models import Token

    port, process = gunicorn
    for size in (MB, MB, MB, 20 * MB):
        status, body = _json(_exchange(port, "/api/ai-helper/events", b"a" * size))
        assert status == 413 and body["error"] == "payload_too_large"
    status, body = _json(_exchange(port, "/api/ai-helper/events", b"a" * 1024, declared=20 * MB))
    assert status == 413 and body["error"] == "payload_too_large"
    status, body = _json(_exchange(port, "/api/ai-helper/events", b"a" * (20 * MB), chunked=True))
    assert status == 413 and "larger than the limit" in body["detail"]

    # A small chunked body is read and reaches the view (an empty one would be "This field is required").
    token = Token.objects.create(user=user).key
    status, body = _json(_exchange(port, "/api/ai-helper/events", json.dumps({"events": 5}).encode(), chunked=True,
                                   headers=f"Authorization: Token {token}\r\n"))
    assert status == 400 and "Expected a list" in body["fields"]["events"][0], body

    process.terminate()
    process.wait(timeout=30)
    log = process.stderr.read().decode()
    assert '"status": 413' in log
    assert '"level": "ERROR"' not in log and "Traceback" not in log, log[-3000:]
