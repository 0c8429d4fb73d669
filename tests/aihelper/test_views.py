import json

import pytest
from django.test import Client

from aihelper.chat.models import ChatSession

pytestmark = pytest.mark.django_db


def _events(response) -> list[tuple[str, dict]]:
    text = b"".join(response.streaming_content).decode()
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_chat_page_has_its_scripts_no_widget_and_a_csp(auth_client):
    response = auth_client.get("/chat/")
    assert response.status_code == 200
    html = response.content.decode()
    # The floating widget is on every page but this one (it would cover the chat's own messages).
    assert 'id="agent-widget"' not in html and "js/ai_chat.js" in html and "js/agent_widget.js" in html
    assert 'id="agent-widget"' in auth_client.get("/runbooks/").content.decode()
    assert 'for="chat-input"' in html
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "<script>" not in html and "style=" not in html and " onclick" not in html


def test_chat_page_needs_login(client):
    assert client.get("/chat/").status_code == 302


def test_stream_sends_deltas_then_the_final_html(auth_client, user, library, recommend_all, offline):
    response = auth_client.post("/chat/stream", {"message": "node disk is full", "source": "widget",
                                                 "page_context": {"path": "/runbooks/"}},
                                content_type="application/json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    events = _events(response)
    assert events[0][0] == "delta"
    name, done = events[-1]
    assert name == "done"
    assert f'data-audit-log-id="{done["audit_log_id"]}"' in done["html"]
    assert "runbook-card" in done["html"] and "Offline mode" in done["html"]
    session = ChatSession.objects.get(pk=done["session_id"])
    assert session.audit_logs.get().source == "widget"

    page = auth_client.get(f"/chat/{session.pk}/").content.decode()
    assert f'data-audit-log-id="{done["audit_log_id"]}"' in page
    assert 'data-rank="1"' in page
    partial = auth_client.get(f"/chat/{session.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<section id="conversation"')


def test_stream_errors_are_json(auth_client, other_user):
    assert auth_client.post("/chat/stream", {"message": ""}, content_type="application/json").status_code == 400
    assert auth_client.post("/chat/stream", "nope", content_type="application/json").status_code == 400
    theirs = ChatSession.objects.create(user=other_user, title="x")
    response = auth_client.post("/chat/stream", {"message": "hi", "session_id": str(theirs.pk)},
                                content_type="application/json")
    assert response.status_code == 404
    assert auth_client.get(f"/chat/{theirs.pk}/").status_code == 404
    anonymous = Client()
    assert anonymous.post("/chat/stream", {"message": "hi"}, content_type="application/json").status_code == 401


def test_no_js_form_posts_and_redirects(auth_client, user, library, recommend_all, offline):
    response = auth_client.post("/chat/send", {"message": "node disk is full"})
    assert response.status_code == 302
    session = ChatSession.objects.get(user=user)
    assert response["Location"] == f"/chat/{session.pk}/"
    assert list(session.messages.values_list("role", flat=True).order_by("created_at")) == ["user", "assistant"]
    page = auth_client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "node disk is full" in html and "NodeDiskFull" in html  # the question and its runbook card
    response = auth_client.post("/chat/send", {"message": ""})
    assert response.status_code == 400
    assert ChatSession.objects.count() == 1


@pytest.mark.parametrize("source", [{}, ["widget"], 7, None])
def test_stream_with_a_non_text_source_still_answers(auth_client, source):
    response = auth_client.post("/chat/stream", json.dumps({"message": "disk is full", "source": source}),
                                content_type="application/json")
    assert response.status_code == 200
    assert b"event: done" in b"".join(response.streaming_content)
