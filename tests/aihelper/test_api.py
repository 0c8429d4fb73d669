import uuid

import pytest

from aihelper.chat.models import ChatSession
from audit.models import AuditLog

pytestmark = pytest.mark.django_db

QUERY = "/api/ai-helper/query"


def test_query_returns_the_answer_contract(auth_client, user, library, recommend_all, offline):
    response = auth_client.post(QUERY, {"message": "node disk is full", "page_context": {"path": "/chat/"}},
                                content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"session_id", "audit_log_id", "answer_markdown", "answer_html", "solutions",
                         "presentation_strategy", "degraded", "provider", "message", "redactions", "conversation"}
    assert body["conversation"] == {"kind": "new", "effective_query": "node disk is full",
                                    "referenced_rank": None, "referenced_step": None}
    assert (body["message"], body["redactions"]) == ("node disk is full", [])
    assert body["provider"] == "offline" and body["degraded"] is False
    solution = body["solutions"][0]
    assert set(solution) == {"rank", "type", "id", "slug", "title", "confidence", "success_rate", "url", "can_execute",
                             "carried_over"}
    assert solution["carried_over"] is False
    assert solution["url"] == f"/runbooks/{solution['id']}/"
    log = AuditLog.objects.get(pk=body["audit_log_id"])
    assert log.source == "direct" and str(log.session_id) == body["session_id"]

    again = auth_client.post(QUERY, {"message": "more", "session_id": body["session_id"]},
                             content_type="application/json")
    assert again.status_code == 200 and again.json()["session_id"] == body["session_id"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({}, "message"),
        ({"message": "x" * 4001}, "message"),
        ({"message": "hi", "session_id": "not-a-uuid"}, "session_id"),
        ({"message": "hi", "page_context": "a string"}, "page_context"),
        ({"message": "hi", "page_context": [1, 2]}, "page_context"),
        ({"message": "hi", "page_context": {"evil": 1}}, "page_context"),
        ({"message": "hi", "page_context": {"runbook_id": "nope"}}, "page_context"),
    ],
)
def test_query_validation_errors(auth_client, payload, field):
    response = auth_client.post(QUERY, payload, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert field in body["fields"]
    assert body["fields"][field]


def test_too_long_message_says_the_limit(auth_client):
    response = auth_client.post(QUERY, {"message": "x" * 4001}, content_type="application/json")
    assert "4000" in str(response.json()["fields"]["message"])


def test_someone_elses_session_is_404(auth_client, other_user):
    theirs = ChatSession.objects.create(user=other_user, title="theirs")
    response = auth_client.post(QUERY, {"message": "hi", "session_id": str(theirs.pk)}, content_type="application/json")
    assert response.status_code == 404
    assert auth_client.get(f"/api/ai-helper/sessions/{theirs.pk}/messages/").status_code == 404
    assert auth_client.get(f"/api/ai-helper/sessions/{uuid.uuid4()}/messages/").status_code == 404


def test_sessions_and_messages_are_the_users_own(auth_client, user, other_user, library, recommend_all, offline):
    ChatSession.objects.create(user=other_user, title="theirs")
    body = auth_client.post(QUERY, {"message": "node disk is full"}, content_type="application/json").json()
    sessions = auth_client.get("/api/ai-helper/sessions/").json()
    assert [s["id"] for s in sessions] == [body["session_id"]]
    messages = auth_client.get(f"/api/ai-helper/sessions/{body['session_id']}/messages/").json()
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assistant = messages[1]
    assert assistant["audit_log_id"] == body["audit_log_id"]
    assert f'data-audit-log-id="{body["audit_log_id"]}"' in assistant["html"]
    assert assistant["solutions"][0]["rank"] == 1


def test_api_needs_login(client):
    assert client.post(QUERY, {"message": "hi"}, content_type="application/json").status_code in (401, 403)
    assert client.get("/api/ai-helper/sessions/").status_code in (401, 403)
