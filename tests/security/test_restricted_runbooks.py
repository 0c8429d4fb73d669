"""A runbook restricted to a group never reaches a user outside it: not in search (selector, page,
command), chat answers (API, solutions, cards, history), the LLM prompt, analytics, or its page.

Every test has a positive control (alice, in the group, does get it) so an absence is meaningful.
The question is the restricted runbook's own description, the strongest possible match.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.aihelper.conftest import RESTRICTED

pytestmark = pytest.mark.django_db

QUESTION = "failover: promote the PostgreSQL replica, replication lag is huge and the primary database is lost"


@pytest.fixture
def restricted(library):
    runbook = library[RESTRICTED["slug"]]
    # Every string that would give the runbook away.
    return runbook, (str(runbook.pk), runbook.name, runbook.slug, "/secret/path")


def _leaks(text: str, markers) -> list[str]:
    return [marker for marker in markers if marker in text]


def test_selector(owner, mallory, restricted):
    from runbooks.search import runbook_search

    runbook, _ = restricted
    alice, _ = owner
    found = {result.runbook.pk for result in runbook_search(query=QUESTION, user=mallory, limit=50).results}
    assert runbook.pk not in found
    assert runbook.pk in {result.runbook.pk for result in runbook_search(query=QUESTION, user=alice).results}


def test_search_page(client, owner, mallory, restricted):
    _, markers = restricted
    alice, _ = owner
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        client.force_login(mallory)
        response = client.get("/runbooks/", {"q": QUESTION}, **headers)
        assert response.status_code == 200
        assert _leaks(response.content.decode(), markers) == []
        client.force_login(alice)
        assert restricted[0].name in client.get("/runbooks/", {"q": QUESTION}, **headers).content.decode()


def test_search_runbooks_command_with_user(owner, mallory, restricted):
    _, markers = restricted
    out = StringIO()
    call_command("search_runbooks", QUESTION, "--user", "mallory", "--json", "--limit", "50", stdout=out)
    assert _leaks(out.getvalue(), markers) == []
    out = StringIO()
    call_command("search_runbooks", QUESTION, "--user", "alice", "--json", stdout=out)
    assert restricted[0].slug in out.getvalue()


def test_chat_api_answer_solutions_and_history(client, owner, mallory, restricted):
    _, markers = restricted
    client.force_login(mallory)
    response = client.post("/api/ai-helper/query", {"message": QUESTION}, content_type="application/json")
    assert response.status_code == 200
    assert _leaks(response.content.decode(), markers) == []
    session_id = response.json()["session_id"]
    history = client.get(f"/api/ai-helper/sessions/{session_id}/messages/")
    assert _leaks(history.content.decode(), markers) == []
    page = client.get(f"/chat/{session_id}/")  # cards rendered from the stored answer
    assert page.status_code == 200 and _leaks(page.content.decode(), markers) == []

    client.force_login(owner[0])
    response = client.post("/api/ai-helper/query", {"message": QUESTION}, content_type="application/json")
    assert restricted[0].name in {solution["title"] for solution in response.json()["solutions"]}


def test_chat_stream_cards(client, owner, mallory, restricted):
    _, markers = restricted
    client.force_login(mallory)
    response = client.post("/chat/stream", {"message": QUESTION, "source": "widget"}, content_type="application/json")
    body = b"".join(response.streaming_content).decode()
    assert "event: done" in body
    assert _leaks(body, markers) == []
    client.force_login(owner[0])
    response = client.post("/chat/stream", {"message": QUESTION}, content_type="application/json")
    assert restricted[0].name in b"".join(response.streaming_content).decode()


def test_llm_prompt_real_sdk(owner, mallory, restricted, fake_anthropic):
    """The real anthropic SDK talks to the fake server; the recorded request is the prompt as sent."""
    from aihelper.chat.services.orchestrator import chat_answer

    _, markers = restricted
    fake_anthropic.text = "Check the replica."
    chat_answer(user=mallory, message=QUESTION)
    assert len(fake_anthropic.requests) == 1
    assert _leaks(json.dumps(fake_anthropic.requests[0]["json"]), markers) == []

    chat_answer(user=owner[0], message=QUESTION)
    assert str(restricted[0].pk) in json.dumps(fake_anthropic.requests[-1]["json"])


def test_analytics_for_staff_outside_the_group(client, owner, restricted):
    """alice was presented the restricted runbook and clicked it; a staff member outside the group sees no
    trace of it in the metrics, a superuser does."""
    from aihelper.chat.services.orchestrator import chat_answer
    from audit.services.tracking import click_record
    from tests.factories import UserFactory

    _, markers = restricted
    alice, _ = owner
    answer = chat_answer(user=alice, message=QUESTION)
    solution = next(s for s in answer.solutions if s.id == markers[0])
    click_record(user=alice, audit_log_id=answer.audit_log.pk, session_id=None, solution_id=solution.id,
                 solution_type="runbook", user_action="clicked_link", client_rank=None, event_id=None,
                 source="chat_page")
    staff = UserFactory(username="staffer", is_staff=True)
    client.force_login(staff)
    response = client.get("/api/analytics/metrics")
    assert response.status_code == 200, response.content
    assert _leaks(response.content.decode(), markers) == []

    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    assert _leaks(client.get("/api/analytics/metrics").content.decode(), markers)


def test_runbook_page_and_execution(client, owner, mallory, restricted):
    runbook, _ = restricted
    client.force_login(mallory)
    assert client.get(f"/runbooks/{runbook.pk}/").status_code == 404
    assert client.post(f"/runbooks/{runbook.pk}/executions/").status_code == 404
