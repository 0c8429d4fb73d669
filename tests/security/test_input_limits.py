"""Input limits: body size (413), batch size, message length, JSON depth: each a 4xx with a JSON body
that says what is wrong, on every JSON endpoint a browser or API client can post to."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

JSON_APIS = ["/api/ai-helper/track-choice", "/api/ai-helper/events", "/api/ai-helper/query"]
def _apis(*, query_xfail: bool):
    # Findings S-4 (query API without the body/depth limits) is fixed: every JSON API is held to them.
    return list(JSON_APIS)


def _deep(levels: int) -> str:
    return '{"message": "disk", "x": ' + "[" * levels + "]" * levels + "}"


def _error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"(stream)")[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] and body["detail"], body
    return body


@pytest.fixture
def api(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", _apis(query_xfail=True))
def test_body_larger_than_the_limit_is_413(api, path):
    body = json.dumps({"message": "x", "events": [], "padding": "a" * (settings.API_MAX_BODY_BYTES + 10)})
    body = _error(api.post(path, body, content_type="application/json"), 413)
    assert body["error"] == "payload_too_large" and "limit" in body["detail"]


@pytest.mark.parametrize("path", _apis(query_xfail=True))
def test_json_nested_deeper_than_12_is_400(api, path):
    body = _error(api.post(path, _deep(13), content_type="application/json"), 400)
    assert "nested deeper" in body["detail"]


def _deep_params():
    # 50 000 levels is over the byte limit (413 first); 5 000 is under it but past Python's recursion limit.
    for path in JSON_APIS:
        for levels in (50_000, 5_000):
            yield pytest.param(path, levels, id=f"{path}-{levels}")


@pytest.mark.parametrize(("path", "levels"), list(_deep_params()))
def test_pathologically_deep_json_is_a_4xx_not_a_500(client, user, path, levels):
    client.raise_request_exception = False
    client.force_login(user)
    response = client.post(path, _deep(levels), content_type="application/json")
    assert 400 <= response.status_code < 500, response.status_code


@pytest.mark.parametrize("path", JSON_APIS)
def test_malformed_json_is_400(api, path):
    for raw in ("{", "NaN", '{"a": Infinity}', "\xff"):
        body = _error(api.post(path, raw, content_type="application/json"), 400)
        assert body["detail"]


@pytest.mark.parametrize("path", [*JSON_APIS, "/api/ai-helper/answer-feedback"])
def test_a_number_beyond_a_double_is_400_naming_its_field(api, path):
    """1e999 is valid JSON but reads as infinity, which no JSON column can store: a 400 naming where it is."""
    for raw, field in (('{"message": "disk", "page_context": {"zoom": 1e999}}', "page_context.zoom"),
                       ('{"message": "disk", "events": [], "rank": -1e400}', "rank")):
        body = _error(api.post(path, raw, content_type="application/json"), 400)
        assert list(body["fields"]) == [field] and "range" in body["fields"][field][0], body


@pytest.mark.parametrize("path", [*JSON_APIS, "/api/ai-helper/answer-feedback", "/chat/stream"])
def test_a_key_named_twice_in_one_object_is_400(api, path):
    """{"rank": 1, "rank": 9}: Python would keep the last, other parsers the first; which one the client meant is
    unknowable, so the body is refused, naming the key, before anything is stored or answered."""
    for raw, key in (('{"message": "disk", "message": "redis"}', "message"),
                     ('{"message": "disk", "events": [], "page_context": {"a": 1, "a": 2}}', "a")):
        body = _error(api.post(path, raw, content_type="application/json"), 400)
        assert f'the key "{key}" more than once' in body["detail"], body


@pytest.mark.parametrize(("path", "body", "field", "words"), [
    ("/api/ai-helper/query", {"message": 5}, "message", "Must be a string, not a number"),
    ("/api/ai-helper/query", {"message": "disk", "session_id": 12}, "session_id", "Must be a UUID string"),
    ("/api/ai-helper/track-choice", {"audit_log_id": 7, "choice_data": {"solution_chosen_id": "x",
     "solution_chosen_type": "runbook", "user_action": "clicked_link"}}, "audit_log_id", "Must be a UUID string"),
    ("/api/ai-helper/track-choice", {"audit_log_id": str(uuid.uuid4()), "choice_data": {"solution_chosen_id": 3,
     "solution_chosen_type": "runbook", "user_action": "clicked_link"}}, "choice_data", "Must be a string"),
    ("/api/ai-helper/answer-feedback", {"audit_log_id": str(uuid.uuid4()), "rating": "up", "comment": True},
     "comment", "not a boolean"),
])
def test_a_value_of_the_wrong_json_type_is_400_not_coerced(api, path, body, field, words):
    """A number where a UUID or text belongs is the client's mistake: 400 naming it, not a lookup of
    00000000-...-000c (a 404 for an object nobody has) or the text "5"."""
    body = _error(api.post(path, json.dumps(body), content_type="application/json"), 400)
    assert words in json.dumps(body["fields"][field]), body


def test_an_event_id_that_is_a_number_is_rejected_with_its_event(api):
    event = {"event_id": 5, "event_type": "viewed_detail", "runbook_id": str(uuid.uuid4()),
             "source": "search_page", "client_timestamp": "2026-01-01T00:00:00Z"}
    response = api.post("/api/ai-helper/events", json.dumps({"events": [event]}), content_type="application/json")
    assert response.status_code == 400, response.content  # nothing stored, one invalid event (docs/tracking.md)
    [rejected] = response.json()["rejected"]
    assert "Must be a UUID string" in json.dumps(rejected["errors"]["event_id"])


def test_more_than_100_events_is_400(api):
    event = {"event_id": str(uuid.uuid4()), "event_type": "clicked_link", "runbook_id": str(uuid.uuid4()),
             "source": "search_page", "client_timestamp": "2026-01-01T00:00:00Z"}
    body = _error(api.post("/api/ai-helper/events", {"events": [event] * 101}, content_type="application/json"), 400)
    assert "At most 100 events" in body["fields"]["events"][0]


def test_event_context_larger_than_4_kib_is_rejected(api, library):
    runbook = next(iter(library.values()))
    event = {"event_id": str(uuid.uuid4()), "event_type": "clicked_link", "runbook_id": str(runbook.pk),
             "source": "search_page", "client_timestamp": "2026-01-01T00:00:00Z", "metadata": {"x": "a" * 5000}}
    body = api.post("/api/ai-helper/events", {"events": [event]}, content_type="application/json").json()
    assert "4096 bytes" in body["rejected"][0]["errors"]["metadata"][0]


def test_message_longer_than_the_limit_is_400_with_the_limit(api, settings):
    limit = settings.AIHELPER_MAX_QUERY_CHARS
    response = api.post("/api/ai-helper/query", {"message": "a" * (limit + 1)}, content_type="application/json")
    body = _error(response, 400)
    assert f"at most {limit} characters" in body["fields"]["message"][0]
    stream = api.post("/chat/stream", {"message": "a" * (limit + 1)}, content_type="application/json")
    assert f"at most {limit} characters" in _error(stream, 400)["fields"]["message"][0]


def test_page_context_limits(api):
    for page_context, text in (({"path": "/", "evil": 1}, "Unknown page_context keys"),
                               ("not an object", "must be an object"),
                               ({"path": "a" * 501}, "500 characters")):
        response = api.post("/api/ai-helper/query", {"message": "disk", "page_context": page_context},
                            content_type="application/json")
        assert text in json.dumps(_error(response, 400)["fields"]), page_context


def test_chat_stream_body_over_the_upload_limit_is_a_4xx(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = api.post("/chat/stream", json.dumps({"message": "a" * 4000}), content_type="application/json")
    assert 400 <= response.status_code < 500


def test_long_search_query_is_truncated_with_a_notice(client, user, library):
    client.force_login(user)
    response = client.get("/runbooks/", {"q": "node disk full " * 2000})
    assert response.status_code == 200
    limit = settings.AIHELPER_MAX_QUERY_CHARS
    assert f"only its first {limit} characters were searched".encode() in response.content


def test_empty_or_non_object_bodies_are_400(api):
    for path in JSON_APIS:
        for raw in ("", "[]", '"text"', "null"):
            response = api.post(path, raw, content_type="application/json")
            assert response.status_code == 400, (path, raw, response.status_code, response.content[:200])
            assert response.json()["error"]


@pytest.mark.parametrize("levels", [13, 50_000])
def test_chat_stream_deep_json_is_400(api, levels):
    response = api.post("/chat/stream", _deep(levels), content_type="application/json")
    _error(response, 400)
