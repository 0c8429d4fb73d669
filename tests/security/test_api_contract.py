"""The API does what its OpenAPI schema and docs/tracking.md say (issue 14, "Hardening from the outside"):
repeated event ids (duplicate vs conflict, on every endpoint that takes one), 404 and 401 bodies, and the
input rules the schema declares."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework import exceptions
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer

from aihelper.core.api_errors import exception_handler
from audit.models import AuditLog, RunbookInteractionEvent
from tests.aihelper.factories import ChatSessionFactory
from tests.audit.factories import AuditLogFactory
from tests.factories import UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

EVENTS = "/api/ai-helper/events"
TRACK = "/api/ai-helper/track-choice"
FEEDBACK = "/api/ai-helper/answer-feedback"
SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
OPERATIONS = [(method.upper(), path) for path, item in SCHEMA["paths"].items() for method in item]


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def answer(user):
    session = ChatSessionFactory(user=user, title="disk")
    runbooks = [RunbookFactory(), RunbookFactory()]
    return AuditLogFactory(user=user, session=session, presented=runbooks), runbooks


def _post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def _event(runbook, **overrides) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "viewed_detail", "runbook_id": str(runbook.pk), "rank": 1,
            "source": "search_page", "client_timestamp": timezone.now().isoformat(), "metadata": {"k": "v"},
            **overrides}


def _click(audit_log, runbook, **overrides) -> dict:
    return {"audit_log_id": str(audit_log.pk), "event_id": str(uuid.uuid4()), "source": "chat_page",
            "choice_data": {"solution_chosen_id": str(runbook.pk), "solution_chosen_type": "runbook",
                            "user_action": "clicked_link"}, **overrides}


# --- Repeated event ids: same payload = duplicate, different payload = conflict ------------------------------


def test_events_same_id_same_payload_is_a_duplicate(auth_client):
    event = _event(RunbookFactory())
    assert _post(auth_client, EVENTS, {"events": [event]}).status_code == 201
    again = _post(auth_client, EVENTS, {"events": [event]})
    assert again.status_code == 200
    assert again.json() == {"accepted": [], "duplicates": [event["event_id"]], "rejected": []}


@pytest.mark.parametrize("change", [
    {"event_type": "feedback_negative"}, {"rank": 2}, {"source": "widget"}, {"metadata": {"k": "other"}},
    {"page_context": {"path": "/elsewhere/"}}, {"client_timestamp": "2026-01-01T00:00:00+00:00"},
])
def test_events_same_id_other_payload_is_a_409_conflict_and_the_first_is_kept(auth_client, change):
    event = _event(RunbookFactory())
    assert _post(auth_client, EVENTS, {"events": [event]}).status_code == 201
    response = _post(auth_client, EVENTS, {"events": [{**event, **change}]})
    assert response.status_code == 409, response.content
    assert response.json() == {"accepted": [], "duplicates": [], "rejected": [
        {"index": 0, "event_id": event["event_id"], "error": "conflict",
         "errors": {"event_id": ["This event_id is already used by a different event."]}}]}
    stored = RunbookInteractionEvent.objects.get(event_id=event["event_id"])
    assert (stored.event_type, stored.rank, stored.source) == ("viewed_detail", 1, "search_page")


def test_events_a_clamped_timestamp_retried_later_is_still_a_duplicate(auth_client):
    event = _event(RunbookFactory(), client_timestamp="2001-01-01T00:00:00Z", metadata={"token": "ghp_" + "a" * 36})
    assert _post(auth_client, EVENTS, {"events": [event]}).status_code == 201
    assert RunbookInteractionEvent.objects.get().metadata["client_timestamp_clamped"] is True
    assert _post(auth_client, EVENTS, {"events": [event]}).json()["duplicates"] == [event["event_id"]]


def test_events_numbers_compare_by_value_like_jsonb(auth_client):
    event = _event(RunbookFactory(), metadata={"big": 1e308, "one": 1.0, "list": [0.1, 2]})
    assert _post(auth_client, EVENTS, {"events": [event]}).status_code == 201
    raw = json.dumps({"events": [event]}).replace("1.0,", "1,")
    assert auth_client.post(EVENTS, raw, content_type="application/json").status_code == 200


def test_events_mixed_batch_stores_the_new_reports_the_duplicate_and_the_conflict(auth_client):
    runbook = RunbookFactory()
    old, clash = _event(runbook), _event(runbook)
    assert _post(auth_client, EVENTS, {"events": [old, clash]}).status_code == 201
    fresh = _event(runbook)
    response = _post(auth_client, EVENTS, {"events": [old, {**clash, "rank": 3}, fresh]})
    assert response.status_code == 201
    body = response.json()
    assert body["accepted"] == [fresh["event_id"]] and body["duplicates"] == [old["event_id"]]
    assert [(item["index"], item["error"]) for item in body["rejected"]] == [(1, "conflict")]


def test_events_a_repeat_inside_one_batch_follows_the_same_rule(auth_client):
    runbook = RunbookFactory()
    event, other = _event(runbook), _event(runbook)
    response = _post(auth_client, EVENTS, {"events": [event, event, other, {**other, "rank": 2}]})
    body = response.json()
    assert body["accepted"] == [event["event_id"], other["event_id"]]
    assert body["duplicates"] == [event["event_id"]]
    assert [(item["index"], item["error"]) for item in body["rejected"]] == [(3, "conflict")]
    assert RunbookInteractionEvent.objects.count() == 2


def test_events_an_id_of_another_users_click_is_a_conflict_that_reveals_nothing(client, answer, other_user):
    audit_log, runbooks = answer
    owner = Client()
    owner.force_login(audit_log.user)
    click = _click(audit_log, runbooks[0])
    assert _post(owner, TRACK, click).status_code == 201
    client.force_login(other_user)
    copy = _event(runbooks[0], event_id=click["event_id"], event_type="clicked_link", source="chat_page",
                  rank=1, metadata={"user_action": "clicked_link"})
    response = _post(client, EVENTS, {"events": [copy]})
    assert response.status_code == 409
    assert response.json()["rejected"][0]["error"] == "conflict"
    assert str(audit_log.pk) not in response.content.decode() and str(audit_log.user.pk) not in json.dumps(
        response.json()["rejected"][0]["errors"])
    assert RunbookInteractionEvent.objects.get(event_id=click["event_id"]).user_id == audit_log.user.pk


def test_events_an_id_of_ones_own_click_is_a_conflict_too(auth_client, answer):
    audit_log, runbooks = answer
    click = _click(audit_log, runbooks[0])
    assert _post(auth_client, TRACK, click).status_code == 201
    response = _post(auth_client, EVENTS, {"events": [_event(runbooks[0], event_id=click["event_id"])]})
    assert response.status_code == 409 and response.json()["rejected"][0]["error"] == "conflict"


def test_track_choice_same_id_same_click_is_a_duplicate_another_click_a_conflict(auth_client, answer):
    audit_log, runbooks = answer
    click = _click(audit_log, runbooks[0])
    assert _post(auth_client, TRACK, click).status_code == 201
    assert _post(auth_client, TRACK, click).json()["duplicate"] is True
    other_action = {**click, "choice_data": {**click["choice_data"], "user_action": "copied_command"}}
    other_solution = {**click, "choice_data": {**click["choice_data"], "solution_chosen_id": str(runbooks[1].pk)}}
    for changed in (other_action, other_solution, {**click, "source": "widget"}):
        response = _post(auth_client, TRACK, changed)
        assert response.status_code == 409, (changed, response.content)
        assert response.json() == {"error": "conflict", "detail": "This event_id is already used by a different event."}
    audit_log.refresh_from_db()
    assert len(audit_log.user_modifications["clicks"]) == 1


def test_track_choice_an_id_of_an_event_is_a_409(auth_client, answer):
    audit_log, runbooks = answer
    event = _event(runbooks[0])
    assert _post(auth_client, EVENTS, {"events": [event]}).status_code == 201
    response = _post(auth_client, TRACK, _click(audit_log, runbooks[0], event_id=event["event_id"]))
    assert response.status_code == 409 and response.json()["error"] == "conflict"


# --- 404: JSON "not_found" everywhere under /api/ -------------------------------------------------------------


def test_every_api_404_is_json_not_found(auth_client, answer, other_user):
    audit_log, runbooks = answer
    foreign = AuditLogFactory(user=other_user, presented=runbooks)
    unknown = str(uuid.uuid4())
    choice = _click(audit_log, runbooks[0])["choice_data"]
    responses = {
        "unknown route": auth_client.get("/api/ai-helper/no-such-thing"),
        "non-UUID path id": auth_client.get("/api/ai-helper/sessions/not-a-uuid/messages/"),
        "unknown session": auth_client.get(f"/api/ai-helper/sessions/{unknown}/messages/"),
        "track-choice, unknown audit log": _post(auth_client, TRACK, {"audit_log_id": unknown, "choice_data": choice}),
        "track-choice, someone else's": _post(auth_client, TRACK, {"audit_log_id": str(foreign.pk),
                                                                   "choice_data": choice}),
        "track-choice, unknown session": _post(auth_client, TRACK, {"session_id": unknown, "choice_data": choice}),
        "answer-feedback": _post(auth_client, FEEDBACK, {"audit_log_id": unknown, "rating": "up"}),
        "query, unknown session": _post(auth_client, "/api/ai-helper/query", {"message": "x", "session_id": unknown}),
    }
    for what, response in responses.items():
        assert response.status_code == 404, (what, response.status_code)
        assert response["Content-Type"].startswith("application/json"), what
        assert response.json()["error"] == "not_found" and response.json()["detail"], (what, response.json())


def test_pages_outside_the_api_keep_the_html_404(auth_client):
    response = auth_client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


# --- 401 with a challenge for every operation, CSRF unchanged ---------------------------------------------------


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("credentials", ["none", "wrong token"])
def test_anonymous_api_calls_are_401_with_www_authenticate(client, method, path, credentials):
    url = path.replace("{session_id}", str(uuid.uuid4()))
    extra = {"HTTP_AUTHORIZATION": "Token " + "0" * 40} if credentials == "wrong token" else {}
    response = client.generic(method, url, "{}", content_type="application/json", **extra)
    assert response.status_code == 401, (method, path, response.status_code)
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"] in ("not_authenticated", "authentication_failed")
    assert "401" in SCHEMA["paths"][path][method.lower()]["responses"], f"{method} {path} does not document 401"


def test_chat_stream_anonymous_is_401_json(client):
    response = _post(client, "/chat/stream", {"message": "disk"})
    assert response.status_code == 401 and response.json()["error"] == "not_authenticated"


def test_session_auth_still_needs_the_csrf_token_and_a_token_client_does_not(answer):
    audit_log, runbooks = answer
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(audit_log.user)
    response = _post(browser, TRACK, _click(audit_log, runbooks[0]))
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    script = Client(enforce_csrf_checks=True)
    token = Token.objects.create(user=audit_log.user)
    response = script.post(TRACK, json.dumps(_click(audit_log, runbooks[0])), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 201


# --- What the schema declares is what the code enforces --------------------------------------------------------


def _component(name: str) -> dict:
    return SCHEMA["components"]["schemas"][name]


def test_schema_declares_the_input_rules():
    assert _component("ChatQueryInput")["properties"]["message"]["minLength"] == 1
    choice = _component("ChoiceData")
    assert set(choice["required"]) == {"solution_chosen_id", "solution_chosen_type", "user_action"}
    assert choice["properties"]["solution_chosen_id"]["minLength"] == 1
    assert _component("TrackChoiceApiInput")["properties"]["choice_data"] == {"$ref": "#/components/schemas/ChoiceData"}
    events = _component("EventIngestApiInput")["properties"]["events"]
    assert (events["minItems"], events["maxItems"]) == (1, 100)
    assert events["items"] == {"$ref": "#/components/schemas/ClientEvent"}
    assert set(_component("RejectedEvent")["required"]) == {"index", "event_id", "error", "errors"}
    for path in ("/api/ai-helper/query", TRACK, EVENTS, FEEDBACK):
        operation = SCHEMA["paths"][path]["post"]
        assert "NUL (U+0000)" in operation["description"] and "surrogate" in operation["description"], path
        if path != "/api/ai-helper/query":
            assert "409" in operation["responses"], path


@pytest.mark.parametrize("url", ["/api/ai-helper/query", "/chat/stream"])
@pytest.mark.parametrize("message", ["", "   \n\t "])
def test_a_blank_message_is_400_naming_it(auth_client, url, message):
    response = _post(auth_client, url, {"message": message})
    assert response.status_code == 400 and "message" in response.json()["fields"]
    assert AuditLog.objects.count() == 0


@pytest.mark.parametrize("missing", ["solution_chosen_id", "solution_chosen_type", "user_action"])
def test_each_required_choice_data_key_is_enforced(auth_client, answer, missing):
    audit_log, runbooks = answer
    click = _click(audit_log, runbooks[0])
    del click["choice_data"][missing]
    response = _post(auth_client, TRACK, click)
    assert response.status_code == 400 and missing in response.json()["fields"]["choice_data"]


def test_no_error_body_can_hold_an_unencodable_character():
    """The last line of defence: whatever a message quotes, the error renders (escaped) instead of a 500."""
    bad = "\ud800 and \x00"
    for exc in (exceptions.ValidationError({bad: [f'"{bad}" is not a valid choice.']}),
                exceptions.NotFound(bad), exceptions.ParseError(bad)):
        response = exception_handler(exc, {})
        rendered = JSONRenderer().render(response.data).decode("utf-8")
        assert "\\\\ud800" in rendered and "\\\\u0000" in rendered, rendered


def test_a_token_users_events_are_their_own(answer):
    """Token and session clients are the same user to the API: one's event id retried by the other is a
    duplicate, not a conflict."""
    audit_log, runbooks = answer
    event = _event(runbooks[0])
    browser = Client()
    browser.force_login(audit_log.user)
    assert _post(browser, EVENTS, {"events": [event]}).status_code == 201
    token = Token.objects.create(user=audit_log.user)
    response = Client().post(EVENTS, json.dumps({"events": [event]}), content_type="application/json",
                             HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200 and response.json()["duplicates"] == [event["event_id"]]


def test_another_user_reusing_an_event_id_is_a_conflict(client, other_user):
    event = _event(RunbookFactory())
    owner = Client()
    owner.force_login(UserFactory(username="owner"))
    assert _post(owner, EVENTS, {"events": [event]}).status_code == 201
    client.force_login(other_user)
    response = _post(client, EVENTS, {"events": [event]})
    assert response.status_code == 409 and response.json()["rejected"][0]["error"] == "conflict"
