"""Under ASGI the body limit holds before Django reads a body (aihelper/asgi.py: BodyLimitASGI)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync

from aihelper.asgi import application
from aihelper.core.async_http import BodyLimitASGI

# Django's ASGI handler closes stale connections around each request (in its own threads).
pytestmark = pytest.mark.django_db(transaction=True)
MB = 1024 * 1024
LIMIT = 64 * 1024


@pytest.fixture(autouse=True)
def _api_limit(settings):
    settings.API_MAX_BODY_BYTES = LIMIT


def _scope(headers: list[tuple[bytes, bytes]]) -> dict:
    path = "/api/ai-helper/events"
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
            "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}


class Client:
    """Sends ``chunks`` (4 kB each) and then nothing more, keeping the connection open."""

    def __init__(self, chunks: int) -> None:
        self.left, self.reads = chunks, 0

    async def receive(self):
        if self.left == 0:
            await asyncio.Event().wait()
        self.left -= 1
        self.reads += 1
        return {"type": "http.request", "body": b"a" * 4096, "more_body": True}


def _through(app, scope, client: Client) -> list[dict]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def run():
        await asyncio.wait_for(app(scope, client.receive, send), timeout=30)

    async_to_sync(run)()
    return sent


def _answer(sent: list[dict]) -> tuple[int, dict]:
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


class Recorder:
    """An inner application that records the body it is given and answers at once."""

    body: bytes | None = None

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.body = message["body"]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_nothing_of_an_announced_body_over_the_limit_is_read():
    inner, client = Recorder(), Client(chunks=1000)
    _through(BodyLimitASGI(inner), _scope([(b"content-length", str(20 * MB).encode())]), client)
    assert client.reads == 0 and inner.body == b""


def test_a_chunked_body_is_read_only_to_just_past_the_limit():
    inner, client = Recorder(), Client(chunks=1000)
    _through(BodyLimitASGI(inner), _scope([(b"transfer-encoding", b"chunked")]), client)
    assert len(inner.body) == LIMIT + 1 and client.reads == LIMIT // 4096 + 1


def test_django_answers_413_to_a_silent_client_that_announced_too_much():
    status, body = _answer(_through(application, _scope([(b"content-length", str(20 * MB).encode())]), Client(0)))
    assert status == 413 and body["error"] == "payload_too_large" and str(20 * MB) in body["detail"]


def test_django_answers_413_to_a_chunked_body_over_the_limit():
    sent = _through(application, _scope([(b"transfer-encoding", b"chunked")]), Client(chunks=LIMIT // 4096 + 1))
    status, body = _answer(sent)
    assert status == 413 and "larger than the limit" in body["detail"]
