"""JSON logs: one object per line, with the request id, and the chat timings (never the message)."""

import json
import logging

import pytest

from aihelper.core.logjson import JsonFormatter

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines():
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(JsonFormatter().format(record))

    handler = Collect(level=logging.INFO)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield records
    root.removeHandler(handler)
    root.setLevel(previous)


def test_chat_answer_logs_timings_with_the_request_id_and_no_message(auth_client, json_lines):
    secret_question = "the disk of db-secret-7 is full"
    response = auth_client.post(
        "/api/ai-helper/query", json.dumps({"message": secret_question}), content_type="application/json",
        HTTP_X_REQUEST_ID="req-42",
    )
    assert response.status_code == 200
    lines = [json.loads(line) for line in json_lines]
    answer = next(line for line in lines if line["message"] == "chat answer")
    assert answer["request_id"] == "req-42"
    assert {"retrieval", "prompt", "llm", "render", "write"} <= set(answer["timings_ms"])
    assert answer["provider"] == "offline"
    request_line = next(line for line in lines if line["message"] == "request")
    assert request_line["request_id"] == "req-42" and request_line["status"] == 200
    assert all(secret_question not in line for line in json_lines)
