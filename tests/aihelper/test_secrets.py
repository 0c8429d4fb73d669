"""A message with pasted secrets: the LLM provider, every table and the logs see placeholders only, and the
engineer is told what was removed. Real SDK against the local fake Messages API, real database."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from psycopg import sql

from aihelper.chat.models import ChatMessage, ChatSession
from audit.models import AuditLog, RunbookInteractionEvent

pytestmark = pytest.mark.django_db

AWS = "AKIAQ3EGRZ7XK2LMN4PB"
DB_PASSWORD = "Pg-s3cret-42"
BEARER = "8f3kQ9zL2mN7xR4tV1yB6cW0pJ5sH"
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
NOTE_TOKEN = "9bX2kLq7Zr4TnW8v"
ALL = (AWS, DB_PASSWORD, BEARER, SLACK, NOTE_TOKEN)
MESSAGE = (
    f"node disk is full and the backup to postgres://app:{DB_PASSWORD}@db:5432/app fails; "
    f"the job runs with AWS key {AWS} and calls curl -H 'Authorization: Bearer {BEARER}'"
)


@pytest.fixture(autouse=True)
def _no_throttle_state():
    cache.clear()
    yield
    cache.clear()


def _database_text() -> str:
    """Every row of every table in the schema, as text."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table)).as_string(
                connection.connection
            ))
            rows += [row[0] for row in cursor.fetchall()]
    return "\n".join(rows)


def _log_text(records) -> str:
    return "\n".join(f"{record.getMessage()} {record.__dict__}" for record in records)


def _leaks(text: str) -> list[str]:
    return [secret for secret in ALL if secret in text]


def test_secrets_in_a_question_never_reach_the_llm_the_database_or_the_logs(
    auth_client, user, library, recommend_all, fake_anthropic, caplog
):
    caplog.set_level(logging.DEBUG)
    response = auth_client.post(
        "/api/ai-helper/query",
        {"message": MESSAGE, "page_context": {"path": "/alerts/42", "title": f"slack {SLACK}"}},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()

    sent = json.dumps(fake_anthropic.requests)
    assert fake_anthropic.requests and _leaks(sent) == []
    assert "[redacted: url-password]" in sent and "[redacted: aws-access-key]" in sent

    assert _leaks(json.dumps(body)) == []
    assert sorted(body["redactions"]) == ["authorization", "aws-access-key", "slack-token", "url-password"]
    assert "postgres://app:[redacted: url-password]@db:5432/app" in body["message"]

    stored = ChatMessage.objects.get(session_id=body["session_id"], role="user")
    assert stored.content == body["message"]
    assert ChatSession.objects.get(pk=body["session_id"]).title == body["message"][:80]
    log = AuditLog.objects.get(pk=body["audit_log_id"])
    assert log.query == body["message"]
    assert sorted(log.ai_action_details["redactions"]) == sorted(body["redactions"])
    assert log.ai_action_details["page_context"]["title"] == "slack [redacted: slack-token]"

    page = auth_client.get(f"/chat/{body['session_id']}/").content.decode()
    assert "4 secrets were removed before this message was sent." in page
    assert _leaks(page) == []

    assert _leaks(_database_text()) == []
    assert _leaks(_log_text(caplog.records)) == []


def test_the_chat_page_stream_shows_the_stored_question_with_the_notice(
    auth_client, user, library, recommend_all, fake_anthropic
):
    response = auth_client.post(
        "/chat/stream", json.dumps({"message": f"redis refuses AUTH, password={NOTE_TOKEN}", "source": "chat_page"}),
        content_type="application/json",
    )
    assert response.status_code == 200
    stream = b"".join(response.streaming_content).decode()
    done = json.loads(stream.split("event: done\ndata: ", 1)[1].split("\n", 1)[0])
    assert done["redacted"] == 1
    assert "1 secret was removed before this message was sent." in done["user_html"]
    assert "password=[redacted: password]" in done["user_html"]
    assert _leaks(stream) == [] and _leaks(json.dumps(fake_anthropic.requests)) == []
    assert _leaks(_database_text()) == []


def test_feedback_comments_execution_notes_and_event_context_are_redacted(auth_client, user, library, offline):
    answer = auth_client.post(
        "/api/ai-helper/query", {"message": "node disk is full"}, content_type="application/json"
    ).json()
    feedback = auth_client.post(
        "/api/ai-helper/answer-feedback",
        {"audit_log_id": answer["audit_log_id"], "rating": "down", "comment": f"it printed token={NOTE_TOKEN}"},
        content_type="application/json",
    )
    assert feedback.status_code == 201, feedback.content
    entry = AuditLog.objects.get(pk=answer["audit_log_id"]).user_modifications["feedback"][0]
    assert entry["comment"] == "it printed token=[redacted: token]" and entry["redactions"] == ["token"]

    runbook = library["test/node-disk-full"]
    start = auth_client.post(f"/runbooks/{runbook.pk}/executions/")
    execution_url = start["Location"]
    notes = f"postgres://a:{DB_PASSWORD}@db/x refused, then {DB_PASSWORD} worked from the bastion"
    finish = auth_client.post(f"{execution_url}finish/", {"outcome": "succeeded", "notes": notes, "confirm": "1"})
    assert finish.status_code == 302

    event = {"event_id": "6a1f0b3e-9c5d-4e7f-8a2b-1c3d5e7f9a0b", "event_type": "viewed_detail",
             "source": "chat_page", "client_timestamp": timezone.now().isoformat(),
             "runbook_id": str(runbook.pk), "page_context": {"url": f"https://x/?token={NOTE_TOKEN}"},
             "metadata": {"slack": SLACK}}
    ingest = auth_client.post("/api/ai-helper/events", {"events": [event]}, content_type="application/json")
    assert ingest.status_code == 201, ingest.content
    stored = RunbookInteractionEvent.objects.get(event_id=event["event_id"])
    assert sorted(stored.metadata["redactions"]) == ["slack-token", "token"]

    assert _leaks(_database_text()) == []
