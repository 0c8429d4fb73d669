"""Text from outside, in every field and key of every JSON endpoint (query, /chat/stream, track-choice,
events, answer-feedback), from a browser (session cookie + CSRF token) and from a script (token):

- the class: a lone surrogate or a NUL at any path of a valid body, as a value or as an object key, is a 400
  naming exactly that path (in /events: that event rejected, naming its path inside the event, and the
  other events of the batch stored);
- the property (hypothesis, derandomized, a fixed budget): arbitrary Unicode (lone surrogates, NUL, control
  and format characters, very long strings, deep and wide objects) put anywhere never gives a 5xx; every 4xx
  is JSON with an error and a detail, an ``invalid`` one names at least one field, and no body holds a
  character that cannot be stored; nothing is half-written: a batch's valid events are all stored, its
  rejected ones not, and a refused request changes nothing."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import hypothesis
import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from aihelper.core.api_limits import MAX_JSON_DEPTH, json_text_problem
from audit.models import AuditLog, RunbookInteractionEvent

pytestmark = pytest.mark.django_db

ENDPOINTS = ["query", "stream", "track-choice", "events", "answer-feedback"]
URLS = {"query": "/api/ai-helper/query", "stream": "/chat/stream", "track-choice": "/api/ai-helper/track-choice",
        "events": "/api/ai-helper/events", "answer-feedback": "/api/ai-helper/answer-feedback"}
CLIENTS = ["session", "token"]
BAD_TEXT = ["\ud800", "a\udfffb", "\x00"]
MUTATED_EVENT = 1  # the event of a batch that the tests spoil; events 0 and 2 stay valid
EXAMPLES = 20  # per endpoint and client: 200 requests in all, a few seconds


@dataclass
class Api:
    client: Client
    kind: str
    owned: object

    def post(self, endpoint: str, body) -> object:
        raw = body if isinstance(body, str) else json.dumps(body)  # lone surrogates become \ud800 escapes
        return self.client.post(URLS[endpoint], raw, content_type="application/json")


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(params=CLIENTS)
def api(request, owner):
    alice, owned = owner
    client = Client(enforce_csrf_checks=True)
    if request.param == "token":
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=alice).key}"
        client.get("/accounts/login/")  # a CSRF cookie without a session: /chat/stream then answers 401
    else:
        client.force_login(alice)
        client.get("/chat/")
    client.defaults["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value
    client.raise_request_exception = False
    return Api(client=client, kind=request.param, owned=owned)


def _event(owned) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "viewed_detail", "runbook_id": owned.runbook_id,
            "audit_log_id": owned.audit_log_id, "session_id": owned.session_id, "rank": 1, "source": "search_page",
            "client_timestamp": timezone.now().isoformat(), "page_context": {"path": "/runbooks/"},
            "metadata": {"k": "v", "list": ["a", 1]}}


def valid_body(endpoint: str, owned) -> dict:
    """A body the endpoint accepts (fresh event ids each time)."""
    context = {"path": "/runbooks/", "title": "Runbooks", "runbook_id": owned.runbook_id}
    return {
        "query": {"message": "node disk is full", "session_id": owned.session_id, "page_context": context},
        "stream": {"message": "node disk is full", "session_id": owned.session_id, "page_context": context,
                   "source": "widget"},
        "track-choice": {"audit_log_id": owned.audit_log_id, "session_id": owned.session_id,
                         "event_id": str(uuid.uuid4()), "source": "chat_page",
                         "choice_data": {"solution_chosen_id": owned.runbook_id, "solution_chosen_type": "runbook",
                                         "user_action": "clicked_link", "solution_chosen_rank": 1}},
        "events": {"events": [_event(owned), _event(owned), _event(owned)]},
        "answer-feedback": {"audit_log_id": owned.audit_log_id, "rating": "up", "comment": "it helped",
                            "event_id": str(uuid.uuid4())},
    }[endpoint]


# --- Paths: where a spoiled string sits, and how the API must name it -----------------------------------------


def value_paths(value, path=()):
    """Every path below the root of a JSON value (object keys and list indexes)."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*path, key)
        yield from value_paths(child, (*path, key))


def object_paths(value, path=()):
    """The root and every object below it: where a key can be added."""
    if isinstance(value, dict):
        yield path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from object_paths(child, (*path, key))


def shown(path) -> str:
    """A path as the API writes it: events[1].metadata.k, unstorable characters as escapes."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = part.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")
            text += f".{part}" if text else part
    return text or "non_field_errors"


def at(body, path):
    for part in path:
        body = body[part]
    return body


def with_value(body, path, value):
    body = json.loads(json.dumps(body))
    at(body, path[:-1])[path[-1]] = value
    return body


def with_key(body, path, key, value="x"):
    body = json.loads(json.dumps(body))
    at(body, path)[key] = value
    return body


def spoiled_bodies(endpoint: str, owned):
    """(body, path named) for every bad text at every path, as a value and as a key. For /events only the
    middle event is spoiled (and the batch itself, at its top level)."""
    body = valid_body(endpoint, owned)
    paths = list(value_paths(body))
    objects = list(object_paths(body))
    if endpoint == "events":
        inside = ("events", MUTATED_EVENT)
        paths = [path for path in paths if path[:2] == inside or len(path) == 1]
        objects = [path for path in objects if path[:2] == inside or path == ()]
    for bad in BAD_TEXT:
        for path in paths:
            yield with_value(valid_body(endpoint, owned), path, bad), path
        for path in objects:
            yield with_key(valid_body(endpoint, owned), path, f"k{bad}"), (*path, f"k{bad}")


# --- Checks shared by the class test and the property ------------------------------------------------------------


def json_body(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), (response.status_code, response["Content-Type"])
    body = json.loads(response.content.decode("utf-8"))
    assert json_text_problem(body) is None, body  # nothing in it that cannot be stored or rendered
    return body


def check_response(api: Api, endpoint: str, response) -> dict | None:
    """No 5xx; a JSON 4xx that says what is wrong; a stream that ends in an answer, not an error."""
    assert response.status_code < 500, (response.status_code, getattr(response, "content", b"")[:300])
    if endpoint == "stream" and response.status_code == 200:
        text = b"".join(response.streaming_content).decode("utf-8")
        assert "event: done" in text and "event: error" not in text, text[-300:]
        return None
    body = json_body(response)
    if response.status_code >= 400 and "rejected" not in body:
        assert body["error"] and body["detail"], body
        if body["error"] == "invalid":
            assert body["fields"] and all(isinstance(key, str) and key for key in body["fields"]), body
    return body


def events_stored(ids) -> set[str]:
    return {str(event_id) for event_id in
            RunbookInteractionEvent.objects.filter(event_id__in=ids).values_list("event_id", flat=True)}


def check_batch(sent, response, body) -> None:
    """Either the batch report, which is exactly what was stored, or an error body and nothing stored."""
    ids = [event.get("event_id") for event in sent if isinstance(event, dict)]
    ids = [value for value in ids if isinstance(value, str) and _is_uuid(value)]
    if "rejected" not in body:
        assert response.status_code >= 400 and not events_stored(ids), body
        return
    rejected = {item["index"] for item in body["rejected"]}
    assert all(item["errors"] for item in body["rejected"]), body
    assert len(body["accepted"]) + len(body["duplicates"]) + len(rejected) == len(sent), body
    for index, event in enumerate(sent):
        if index == MUTATED_EVENT:
            continue
        assert index not in rejected and event["event_id"] in body["accepted"], (index, body)
    assert events_stored(ids) == set(body["accepted"]), body
    spoiled = sent[MUTATED_EVENT]
    if MUTATED_EVENT in rejected and isinstance(spoiled, dict) and spoiled.get("event_id") in ids:
        assert not events_stored([spoiled["event_id"]]), body


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def writes(owned) -> tuple:
    """What a refused request must leave as it was: answers, clicks, feedback."""
    audit_log = AuditLog.objects.get(pk=owned.audit_log_id)
    modifications = audit_log.user_modifications
    return AuditLog.objects.count(), len(modifications.get("clicks", [])), len(modifications.get("feedback", []))


def post_and_check(api: Api, endpoint: str, body) -> tuple[object, dict | None]:
    before = writes(api.owned)
    response = api.post(endpoint, body)
    checked = check_response(api, endpoint, response)
    if endpoint == "stream" and api.kind == "token":
        assert response.status_code == 401  # the stream is the chat page's: session only
    if endpoint == "events" and isinstance(body, dict) and isinstance(body.get("events"), list):
        check_batch(body["events"], response, checked)
    elif response.status_code >= 400:
        assert writes(api.owned) == before, (response.status_code, checked)
    return response, checked


# --- The class: every path, every bad text, value and key -------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unstorable_text_anywhere_is_a_400_naming_its_path(api, endpoint):
    if endpoint == "stream" and api.kind == "token":
        pytest.skip("the chat stream takes session auth only (401 for a token, checked by the property test)")
    for body, path in spoiled_bodies(endpoint, api.owned):
        response, checked = post_and_check(api, endpoint, body)
        if endpoint == "events" and path[:2] == ("events", MUTATED_EVENT):
            assert response.status_code == 201, checked
            [rejected] = checked["rejected"]
            assert rejected["index"] == MUTATED_EVENT and list(rejected["errors"]) == [shown(path[2:])], checked
        else:
            assert response.status_code == 400, (path, response.status_code, checked)
            assert list(checked["fields"]) == [shown(path)], (path, checked)
        [message] = (checked["rejected"][0]["errors"] if "rejected" in checked else checked["fields"]).values()
        assert "NUL" in message[0] or "surrogate" in message[0], message


# --- The property: arbitrary text anywhere ------------------------------------------------------------------------

# Characters that have broken parsers, renderers, databases and terminals, mixed into arbitrary Unicode
# (hypothesis' characters() with no category excluded includes lone surrogates and NUL).
NASTY = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\x1b[31m", "\u202e", "\ufeff", "\u200b", "\x7f",
         "\u0085", "\u2028", "\r\n", "\U0001f4a5", "\U0010ffff", "\\", '"', "</script>", "%s", "{}", "\\u0000"]
PIECES = st.one_of(st.characters(exclude_categories=()), st.sampled_from(NASTY))
SHORT_TEXT = st.lists(PIECES, max_size=12).map("".join)
LONG_TEXT = st.builds(lambda unit, count: unit * count, st.lists(PIECES, min_size=1, max_size=3).map("".join),
                      st.integers(min_value=200, max_value=3000))
TEXT = st.one_of(SHORT_TEXT, SHORT_TEXT, LONG_TEXT)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), TEXT)


def _nest(value, depth: int, key: str):
    for level in range(depth):
        value = {key: value} if level % 2 else [value]
    return value


JSON = st.one_of(
    st.recursive(SCALARS, lambda children: st.one_of(
        st.lists(children, max_size=40), st.dictionaries(SHORT_TEXT, children, max_size=40)), max_leaves=60),
    st.builds(_nest, SCALARS, st.integers(min_value=1, max_value=MAX_JSON_DEPTH + 3), SHORT_TEXT),  # deep
)


@st.composite
def spoiled(draw, endpoint: str, owned):
    """A valid body with one thing changed: a value replaced, a key added or renamed, or the whole body."""
    body = valid_body(endpoint, owned)
    paths = list(value_paths(body))
    if endpoint == "events":
        paths = [path for path in paths if path[:2] == ("events", MUTATED_EVENT)]
    how = draw(st.sampled_from(["value", "value", "key", "rename", "body"]))
    if how == "body":
        return draw(JSON)
    if how == "key":
        objects = [path for path in object_paths(body) if endpoint != "events" or path[:2] == ("events", MUTATED_EVENT)]
        return with_key(body, draw(st.sampled_from(objects)), draw(SHORT_TEXT), draw(JSON))
    path = draw(st.sampled_from(paths))
    if how == "rename" and isinstance(path[-1], str):
        parent = at(body, path[:-1])
        parent[draw(SHORT_TEXT)] = parent.pop(path[-1])
        return body
    return with_value(body, path, draw(JSON))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_arbitrary_unicode_anywhere_never_breaks_the_api(api, endpoint):
    @hypothesis.settings(
        max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=False,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(st.data())
    def run(data):
        cache.clear()  # the property is about text, not about the throttles
        post_and_check(api, endpoint, data.draw(spoiled(endpoint, api.owned)))

    run()
