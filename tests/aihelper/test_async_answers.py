"""The async answer path (issue 17): the real SDK's async client against the fake Messages API, streamed
deltas, a reset on a mid-stream failure, a client that goes away, and streaming through Django's ASGI side."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient

from aihelper.chat.models import ChatMessage
from aihelper.chat.services.llm_gate import llm_gate
from aihelper.chat.services.orchestrator import AnswerDelta, AnswerReset, ChatAnswer, achat_answer_stream
from audit.models import AuditLog, RunbookInteractionEvent
from runbooks import embeddings
from tests.security.test_llm_faults import TruncatingAnthropic

pytestmark = pytest.mark.django_db


@pytest.fixture
def slow_model(fake_anthropic):
    """40 words in 20 deltas 0.05 s apart: about 1 s of answer."""
    fake_anthropic.text = " ".join(f"word{i}" for i in range(40))
    fake_anthropic.deltas = 20
    fake_anthropic.delta_delay = 0.05
    return fake_anthropic


def _events(**kwargs) -> list:
    async def collect():
        return [event async for event in await achat_answer_stream(**kwargs)]

    return async_to_sync(collect)()


def test_async_path_streams_every_delta_then_records(user, library, recommend_all, slow_model):
    events = _events(user=user, message="node disk is full")
    deltas = [e for e in events if isinstance(e, AnswerDelta)]
    assert len(deltas) >= 10, "the SDK's deltas are passed on one by one, not joined"
    answer = events[-1]
    assert isinstance(answer, ChatAnswer) and not answer.degraded
    assert "".join(d.text for d in deltas) == answer.answer_markdown == slow_model.text
    log = AuditLog.objects.get(pk=answer.audit_log.pk)
    assert (log.input_tokens, log.output_tokens, log.degraded) == (42, 17, False)
    assert slow_model.completed == 1 and slow_model.disconnects == 0
    assert llm_gate.status().in_flight == 0


@pytest.fixture
def truncating(settings):
    server = TruncatingAnthropic(text="Follow the runbook.").start()
    settings.LLM_PROVIDER = "anthropic"
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = server.url
    settings.ANTHROPIC_TIMEOUT = 0.5
    settings.ANTHROPIC_MAX_RETRIES = 0
    server.mode = "truncate"
    yield server
    server.stop()


def test_async_path_resets_on_a_mid_stream_failure(user, library, recommend_all, truncating):
    events = _events(user=user, message="node disk is full")
    kinds = [type(e) for e in events]
    assert kinds[0] is AnswerDelta and AnswerReset in kinds and kinds[-1] is ChatAnswer
    assert kinds.index(AnswerReset) == len(kinds) - 2
    answer = events[-1]
    assert answer.degraded and "Partial answer" not in answer.answer_markdown
    assert "NodeDiskFull" in answer.answer_markdown


def test_a_client_that_goes_away_stops_the_llm_and_is_audited_as_cut_short(user, library, recommend_all,
                                                                          slow_model):
    async def scenario():
        events = await achat_answer_stream(user=user, message="node disk is full")
        received: list = []
        two = asyncio.Event()

        async def read():
            async for event in events:
                received.append(event)
                if len(received) == 2:
                    two.set()

        task = asyncio.create_task(read())
        await asyncio.wait_for(two.wait(), timeout=10)
        task.cancel()  # what Django's ASGI handler does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await task
        return received

    received = async_to_sync(scenario)()
    assert all(isinstance(e, AnswerDelta) for e in received)
    log = AuditLog.objects.get()
    assert log.degraded and log.error.startswith("cut short: the client disconnected")
    assert log.response.startswith("".join(e.text for e in received))
    assert log.ai_action_details["solutions_presented"] == []  # the cards come only with the finished answer
    assert not RunbookInteractionEvent.objects.filter(audit_log_id=log.pk).exists()
    assert not ChatMessage.objects.exists()
    assert llm_gate.status().in_flight == 0
    deadline = time.monotonic() + 5
    while slow_model.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow_model.disconnects == 1 and slow_model.completed == 0, "the model's stream was closed mid-answer"


def test_chat_stream_streams_under_asgi(user, library, recommend_all, slow_model):
    """Django's async side (as under uvicorn): the first delta goes out long before the answer ends."""

    async def scenario():
        client = AsyncClient()
        await client.aforce_login(user)
        started = time.perf_counter()
        response = await client.post("/chat/stream", {"message": "node disk is full"},
                                     content_type="application/json")
        assert response.status_code == 200
        arrivals, body = [], b""
        async for chunk in response.streaming_content:
            arrivals.append(time.perf_counter() - started)
            body += chunk
        return arrivals, body.decode()

    arrivals, body = async_to_sync(scenario)()
    assert body.count("event: delta") >= 10 and "event: done" in body
    assert arrivals[0] < arrivals[-1] - 0.5, arrivals
    done = json.loads(body.split("event: done\ndata: ")[1].split("\n")[0])
    assert done["degraded"] is False and done["provider"] == "anthropic"


@pytest.mark.django_db(transaction=True)
def test_a_disconnect_seen_by_djangos_asgi_handler_cuts_the_answer_short(user, library, recommend_all, slow_model):
    """Through aihelper.asgi (as under uvicorn): the client disconnects mid-answer; Django cancels the view."""
    from rest_framework.authtoken.models import Token

    from aihelper.asgi import application

    token = Token.objects.create(user=user).key
    body = json.dumps({"message": "node disk is full"}).encode()
    sent: list[dict] = []

    async def scenario():
        gone = asyncio.Event()
        asked = False

        async def receive():
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": body, "more_body": False}
            while not slow_model.requests:  # the model has been asked: now the tab is closed
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            gone.set()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        path = "/api/ai-helper/query"
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode()),
                             (b"authorization", f"Token {token}".encode())],
                 "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
        await asyncio.wait_for(application(scope, receive, send), timeout=30)
        return gone.is_set()

    assert async_to_sync(scenario)()
    assert not [m for m in sent if m["type"] == "http.response.start"], "nobody was left to answer"
    log = AuditLog.objects.get()
    assert log.error.startswith("cut short") and log.degraded and log.source == "direct"
    deadline = time.monotonic() + 5
    while slow_model.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow_model.disconnects == 1 and slow_model.completed == 0


@pytest.mark.django_db(transaction=True)
def test_an_answer_hands_its_database_connection_back_before_waiting_its_turn(user, library, monkeypatch):
    """With the pool (make serve) a connection held by a waiting answer would be missing for a click or a page."""
    from django.db import connection

    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)  # as under the ASGI server

    async def scenario():
        # Authentication and the session are read first, on the request's thread (here: this one).
        await sync_to_async(lambda: list(type(user).objects.filter(pk=user.pk)))()
        events = await achat_answer_stream(user=user, message="node disk is full")
        held = await sync_to_async(lambda: connection.connection is not None)()
        await events.aclose()
        return held

    assert async_to_sync(scenario)() is False


def test_the_query_vector_computed_before_the_search_is_the_one_the_search_uses(
    user, library, recommend_all, offline, monkeypatch
):
    """The answer embeds the engineer's message once (before its retrieval step, runbooks.embeddings.QueryBatcher)
    and the search finds that vector: one model run per question, the right runbook found with it."""
    runs: list[list[str]] = []

    class Counting(embeddings.MiniLMEmbedder):
        def _encode(self, texts):
            runs.append(list(texts))
            return super()._encode(texts)

    counting = Counting(cache_size=16)
    counting._model = embeddings.get_embedder().model
    monkeypatch.setattr(embeddings, "_embedder", counting)
    message = "  node disk is full, pods evicted on worker-3  "
    answer = _events(user=user, message=message)[-1]
    assert runs == [[message.strip()]]
    assert "NodeDiskFull" in [solution.title for solution in answer.solutions]
    assert AuditLog.objects.get(pk=answer.audit_log.pk).degraded is False
