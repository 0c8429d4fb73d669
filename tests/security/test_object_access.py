"""Object access: every page and API that takes an id answers 404 for someone else's id.

Each case is run twice with the same request: as mallory (expected 404, or the documented
per-item rejection) and as alice, the owner (expected success), so a 404 can never come from a
wrong URL in the table. ``test_every_route_with_an_id_is_covered`` walks the URLconf and fails when a
route with a <uuid>/<int> parameter is not in ``ROUTE_CASES``: a new route cannot slip through.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from audit.models import RunbookInteractionEvent
from runbooks.models import RunbookExecution

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # placeholders: {session_id} {audit_log_id} {runbook_id} {restricted_id} {execution_id} {alert_id}
    owner_status: int
    body: dict = field(default_factory=dict)
    json: bool = False
    headers: dict = field(default_factory=dict)
    expected: int = 404


def _choice() -> dict:
    return {"solution_chosen_id": "{runbook_id}", "solution_chosen_type": "runbook", "user_action": "clicked_link"}


# Routes whose URL carries an id. Keys are URL names; the walk below must find nothing else.
ROUTE_CASES: dict[str, list[Case]] = {
    "chat_session": [
        Case("get", "/chat/{session_id}/", 200),
        Case("get", "/chat/{session_id}/", 200, headers={"HTTP_HX_REQUEST": "true"}),  # the htmx partial
    ],
    "api_ai_helper_session_messages": [Case("get", "/api/ai-helper/sessions/{session_id}/messages/", 200)],
    "runbooks:detail": [Case("get", "/runbooks/{restricted_id}/", 200)],
    # The editor: alice may see the runbook but is neither staff nor in its owning group, so 403 (saying who
    # may); mallory may not even see it, so 404 like the runbook page.
    "runbooks:edit": [Case("get", "/runbooks/{restricted_id}/edit/", 403)],
    "runbooks:execution_start": [Case("post", "/runbooks/{restricted_id}/executions/", 302)],
    "runbooks:execution": [Case("get", "/runbooks/executions/{execution_id}/", 200)],
    "runbooks:execution_step": [
        Case("post", "/runbooks/executions/{execution_id}/steps/0/", 200, body={"done": "1"}),
    ],
    "runbooks:execution_finish": [
        Case("post", "/runbooks/executions/{execution_id}/finish/", 302, body={"outcome": "succeeded", "confirm": "1"}),
    ],
    # Alerts are shared: both get their own chat session about the alert (tests/alerts/test_ask.py checks that
    # mallory's is not alice's); what each is shown is filtered to the runbooks they may see.
    "alerts:ask": [Case("post", "/alerts/{alert_id}/ask", 302, expected=302)],
}

# Endpoints that take an id in the body: same rule.
BODY_CASES: dict[str, Case] = {
    "query API, session_id": Case(
        "post", "/api/ai-helper/query", 200, json=True, body={"message": "disk full", "session_id": "{session_id}"}
    ),
    "chat stream, session_id": Case(
        "post", "/chat/stream", 200, json=True, body={"message": "disk full", "session_id": "{session_id}"}
    ),
    "chat send (no JS), session_id": Case(
        "post", "/chat/send", 302, body={"message": "disk full", "session_id": "{session_id}"}
    ),
    "track-choice by audit_log_id": Case(
        "post", "/api/ai-helper/track-choice", 201, json=True,
        body={"audit_log_id": "{audit_log_id}", "choice_data": _choice()},
    ),
    "track-choice by session_id": Case(
        "post", "/api/ai-helper/track-choice", 201, json=True,
        body={"session_id": "{session_id}", "choice_data": _choice()},
    ),
    "track-choice by both": Case(
        "post", "/api/ai-helper/track-choice", 201, json=True,
        body={"audit_log_id": "{audit_log_id}", "session_id": "{session_id}", "choice_data": _choice()},
    ),
}

RATING = "up"  # one of audit.services.tracking.FEEDBACK_RATINGS

# Routes with an id that are reached only by staff through Django's own admin permission checks.
EXEMPT_NAMESPACES = {"admin"}


def _fill(value, owned):
    if isinstance(value, str):
        return value.format(**owned.__dict__)
    if isinstance(value, dict):
        return {key: _fill(item, owned) for key, item in value.items()}
    return value


def _request(client, case: Case, owned):
    path = _fill(case.path, owned)
    body = _fill(case.body, owned)
    if case.method == "get":
        return client.get(path, **case.headers)
    if case.json:
        return client.post(path, body, content_type="application/json", **case.headers)
    return client.post(path, body, **case.headers)


def _route_names(resolver: URLResolver, prefix: str = "", namespace: str = ""):
    """(full route, name) of every URL pattern, recursively."""
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}{entry.namespace}:"
            yield from _route_names(entry, route, inner)
        elif isinstance(entry, URLPattern):
            yield route, f"{namespace}{entry.name}" if entry.name else route


def test_every_route_with_an_id_is_covered():
    with_ids = {
        name: route
        for route, name in _route_names(get_resolver())
        if ("<uuid:" in route or "<int:" in route)
        and name.split(":")[0] not in EXEMPT_NAMESPACES
    }
    assert with_ids, "the URLconf walk found no route with an id: the walk is broken"
    missing = {name: route for name, route in with_ids.items() if name not in ROUTE_CASES}
    assert not missing, f"routes taking an id without an object-access case in ROUTE_CASES: {missing}"


def test_admin_with_ids_is_closed_to_non_staff(client, owner, mallory):
    client.force_login(mallory)
    response = client.get(f"/admin/runbooks/runbookexecution/{owner[1].execution_id}/change/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize(
    ("name", "index"), [(name, index) for name, cases in ROUTE_CASES.items() for index in range(len(cases))]
)
def test_someone_elses_id_in_the_url_is_404(client, owner, mallory, name, index):
    alice, owned = owner
    case = ROUTE_CASES[name][index]
    executions_before = RunbookExecution.objects.count()
    client.force_login(mallory)
    response = _request(client, case, owned)
    assert response.status_code == case.expected, (name, response.status_code, response.content[:300])
    assert RunbookExecution.objects.count() == executions_before  # nothing was started for mallory
    assert RunbookExecution.objects.get(pk=owned.execution_id).step_progress == {}  # nor changed for alice

    client.force_login(alice)
    assert _request(client, case, owned).status_code == case.owner_status, name


@pytest.mark.parametrize("name", list(BODY_CASES))
def test_someone_elses_id_in_the_body_is_404(client, owner, mallory, name):
    alice, owned = owner
    case = BODY_CASES[name]
    client.force_login(mallory)
    response = _request(client, case, owned)
    assert response.status_code == 404, (name, response.status_code, response.content[:300])
    if case.json:
        assert response.json()["error"] in ("not_found", "error")
    client.force_login(alice)
    assert _request(client, case, owned).status_code == case.owner_status, name


def test_track_choice_with_own_audit_log_and_someone_elses_session_is_refused(client, owner, mallory, library):
    """mallory's own audit log paired with alice's session must not attach anything to alice's session."""
    from aihelper.chat.services.orchestrator import chat_answer

    _, owned = owner
    own = chat_answer(user=mallory, message="node disk is full")
    client.force_login(mallory)
    response = client.post(
        "/api/ai-helper/track-choice",
        {"audit_log_id": str(own.audit_log.pk), "session_id": owned.session_id,
         "choice_data": {"solution_chosen_id": own.solutions[0].id, "solution_chosen_type": "runbook",
                         "user_action": "clicked_link"}},
        content_type="application/json",
    )
    assert response.status_code in (404, 422), response.content
    assert not RunbookInteractionEvent.objects.filter(session_id=owned.session_id, user_id=mallory.pk).exists()


@pytest.mark.parametrize("reference", ["audit_log_id", "session_id"])
def test_events_with_someone_elses_audit_log_or_session_are_rejected(client, owner, mallory, reference):
    """The batch API rejects per event (docs/tracking.md): 400 with the reason, nothing stored."""
    alice, owned = owner
    event = {
        "event_id": str(uuid.uuid4()), "event_type": "clicked_link", "runbook_id": owned.runbook_id,
        reference: getattr(owned, reference), "source": "chat_page", "client_timestamp": "2026-01-01T00:00:00Z",
    }
    client.force_login(mallory)
    response = client.post("/api/ai-helper/events", {"events": [event]}, content_type="application/json")
    assert response.status_code == 400, response.content
    assert list(response.json()["rejected"][0]["errors"]) == [reference]
    assert not RunbookInteractionEvent.objects.filter(event_id=event["event_id"]).exists()

    client.force_login(alice)
    response = client.post("/api/ai-helper/events", {"events": [event]}, content_type="application/json")
    assert response.status_code == 201, response.content


def test_events_for_a_restricted_runbook_are_rejected(client, owner, mallory):
    _, owned = owner
    event = {"event_id": str(uuid.uuid4()), "event_type": "viewed_detail", "runbook_id": owned.restricted_id,
             "source": "search_page", "client_timestamp": "2026-01-01T00:00:00Z"}
    client.force_login(mallory)
    response = client.post("/api/ai-helper/events", {"events": [event]}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["rejected"][0]["errors"] == {"runbook_id": ["Unknown runbook."]}


def test_from_parameter_with_someone_elses_audit_log_records_nothing_on_it(client, owner, mallory):
    """?from=<audit log> on a runbook page and on execution start only links the user's own audit logs."""
    _, owned = owner
    client.force_login(mallory)
    assert client.get(f"/runbooks/{owned.runbook_id}/?from={owned.audit_log_id}").status_code == 200
    response = client.post(f"/runbooks/{owned.runbook_id}/executions/", {"from": owned.audit_log_id})
    assert response.status_code == 302
    assert not RunbookInteractionEvent.objects.filter(audit_log_id=owned.audit_log_id, user_id=mallory.pk).exists()
    assert RunbookExecution.objects.get(user=mallory).audit_log_id is None


def test_answer_feedback_on_someone_elses_answer_is_404(client, owner, mallory):
    from audit.models import AuditLog

    alice, owned = owner
    body = {"audit_log_id": owned.audit_log_id, "rating": RATING, "comment": "mallory was here"}
    client.force_login(mallory)
    response = client.post("/api/ai-helper/answer-feedback", body, content_type="application/json")
    assert response.status_code == 404, response.content
    assert response.json()["error"] == "not_found"
    assert "mallory" not in str(AuditLog.objects.get(pk=owned.audit_log_id).user_modifications)
    client.force_login(alice)
    response = client.post("/api/ai-helper/answer-feedback", body, content_type="application/json")
    assert response.status_code == 201, response.content


def test_analytics_api_is_403_for_non_staff(client, owner, mallory):
    alice, _ = owner
    for user in (alice, mallory):
        client.force_login(user)
        response = client.get("/api/analytics/metrics")
        assert response.status_code == 403
        assert response.json()["detail"] == "Analytics are for staff only."
    client.logout()
    assert client.get("/api/analytics/metrics").status_code in (401, 403)
