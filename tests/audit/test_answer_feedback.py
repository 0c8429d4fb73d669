"""POST /api/ai-helper/answer-feedback: thumbs on a whole answer, appended to user_modifications["feedback"]."""

import json
import threading
import urllib.error
import urllib.request
import uuid

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from aihelper.chat.tracking_apis import TrackingThrottle
from audit.models import AuditLog
from audit.services.tracking import answer_feedback_record
from tests.audit.factories import AuditLogFactory
from tests.factories import UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

URL = "/api/ai-helper/answer-feedback"
LOG = object()  # stands for the fixture's audit log id in parametrised bodies


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    cache.clear()
    yield
    cache.clear()


def _answer(user):
    runbook = RunbookFactory()
    return AuditLogFactory(user=user, query="disk full", presented=[runbook])


@pytest.fixture
def audit_log(user):
    return _answer(user)


def _post(client, body, **extra):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **extra)


def test_feedback_is_appended_with_rating_comment_time_and_event_id(auth_client, audit_log):
    event_id = str(uuid.uuid4())
    response = _post(auth_client, {"audit_log_id": str(audit_log.pk), "rating": "down", "comment": "  wrong disk ",
                                   "event_id": event_id})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {"audit_log_id": str(audit_log.pk), "event_id": event_id, "rating": "down",
                    "feedback_count": 1, "duplicate": False}
    second = _post(auth_client, {"audit_log_id": str(audit_log.pk), "rating": "up"})
    assert second.status_code == 201 and second.json()["feedback_count"] == 2
    audit_log.refresh_from_db()
    feedback = audit_log.user_modifications["feedback"]
    assert [entry["rating"] for entry in feedback] == ["down", "up"]  # append-only: the first is kept
    assert feedback[0]["comment"] == "wrong disk" and feedback[0]["event_id"] == event_id
    assert feedback[1]["comment"] == "" and uuid.UUID(feedback[1]["event_id"])
    assert all(entry["at"] for entry in feedback)
    assert audit_log.user_modifications["clicks"] == []  # the clicks list is untouched


def test_feedback_next_to_clicks_keeps_both_lists(auth_client, audit_log):
    runbook_id = audit_log.ai_action_details["solutions_presented"][0]["id"]
    click = {"audit_log_id": str(audit_log.pk), "choice_data": {
        "solution_chosen_id": runbook_id, "solution_chosen_type": "runbook", "user_action": "clicked_link"}}
    assert auth_client.post("/api/ai-helper/track-choice", data=json.dumps(click),
                            content_type="application/json").status_code == 201
    assert _post(auth_client, {"audit_log_id": str(audit_log.pk), "rating": "up"}).status_code == 201
    assert auth_client.post("/api/ai-helper/track-choice", data=json.dumps(click),
                            content_type="application/json").status_code == 201
    audit_log.refresh_from_db()
    assert len(audit_log.user_modifications["clicks"]) == 2
    assert len(audit_log.user_modifications["feedback"]) == 1
    assert audit_log.user_modifications["solution_chosen_id"] == runbook_id


def test_repeated_event_id_is_acknowledged_and_stored_once(auth_client, audit_log):
    body = {"audit_log_id": str(audit_log.pk), "rating": "up", "comment": "disk", "event_id": str(uuid.uuid4())}
    assert _post(auth_client, body).status_code == 201
    again = _post(auth_client, body)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["rating"] == "up"
    assert again.json()["feedback_count"] == 1
    audit_log.refresh_from_db()
    assert len(audit_log.user_modifications["feedback"]) == 1


@pytest.mark.parametrize("change", [{"rating": "down"}, {"comment": "another comment"}])
def test_repeated_event_id_with_other_feedback_is_a_409_and_the_original_is_kept(auth_client, audit_log, change):
    body = {"audit_log_id": str(audit_log.pk), "rating": "up", "comment": "disk", "event_id": str(uuid.uuid4())}
    assert _post(auth_client, body).status_code == 201
    again = _post(auth_client, {**body, **change})
    assert again.status_code == 409 and again.json()["error"] == "conflict", again.content
    audit_log.refresh_from_db()
    assert [(entry["rating"], entry["comment"]) for entry in audit_log.user_modifications["feedback"]] == [
        ("up", "disk")
    ]


def test_someone_elses_or_unknown_audit_log_is_404(client, other_user, audit_log):
    client.force_login(other_user)
    for audit_log_id in (audit_log.pk, uuid.uuid4()):
        response = _post(client, {"audit_log_id": str(audit_log_id), "rating": "up"})
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    audit_log.refresh_from_db()
    assert "feedback" not in audit_log.user_modifications


def test_anonymous_is_refused_and_session_auth_needs_csrf(client, user, audit_log):
    assert _post(client, {"audit_log_id": str(audit_log.pk), "rating": "up"}).status_code in (401, 403)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    response = _post(strict, {"audit_log_id": str(audit_log.pk), "rating": "up"})
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rating": "up"}, "audit_log_id"),
        ({"audit_log_id": "not-a-uuid", "rating": "up"}, "audit_log_id"),
        ({"audit_log_id": LOG, "rating": "meh"}, "rating"),
        ({"audit_log_id": LOG}, "rating"),
        ({"audit_log_id": LOG, "rating": "up", "comment": "x" * 1001}, "comment"),
        ({"audit_log_id": LOG, "rating": "up", "comment": 5 * [1]}, "comment"),
        ({"audit_log_id": LOG, "rating": "up", "event_id": "nope"}, "event_id"),
    ],
)
def test_invalid_fields_get_400_with_the_field_named(auth_client, audit_log, body, field):
    body = {key: str(audit_log.pk) if value is LOG else value for key, value in body.items()}
    response = _post(auth_client, body)
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["error"] == "invalid" and field in payload["fields"]
    audit_log.refresh_from_db()
    assert "feedback" not in audit_log.user_modifications


def test_malformed_json_is_a_json_400(auth_client, audit_log):
    response = auth_client.post(URL, data="{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]


def test_a_comment_of_exactly_1000_chars_is_kept(auth_client, audit_log):
    body = {"audit_log_id": str(audit_log.pk), "rating": "down", "comment": "y" * 1000}
    assert _post(auth_client, body).status_code == 201
    audit_log.refresh_from_db()
    assert audit_log.user_modifications["feedback"][0]["comment"] == "y" * 1000


def test_throttled_with_the_tracking_scope(auth_client, audit_log, monkeypatch):
    assert TrackingThrottle.scope == "tracking"
    monkeypatch.setattr(TrackingThrottle, "get_rate", lambda self: "2/min")
    for _ in range(2):
        assert _post(auth_client, {"audit_log_id": str(audit_log.pk), "rating": "up"}).status_code == 201
    response = _post(auth_client, {"audit_log_id": str(audit_log.pk), "rating": "up"})
    assert response.status_code == 429 and response.has_header("Retry-After")
    assert response.json()["retry_after_seconds"] >= 1


def test_described_in_the_openapi_schema(auth_client):
    response = auth_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    operation = schema["paths"]["/api/ai-helper/answer-feedback"]["post"]
    assert operation["operationId"] == "answer_feedback"
    assert {"200", "201", "400", "404", "429"} <= set(operation["responses"])


@pytest.mark.django_db(transaction=True)
def test_concurrent_feedback_over_http_loses_nothing(live_server):
    owner = UserFactory(username="concurrent-feedback")
    token = Token.objects.create(user=owner)
    audit_log = _answer(owner)
    errors: list = []

    def send(index: int) -> None:
        body = json.dumps({"audit_log_id": str(audit_log.pk), "rating": "up" if index % 2 else "down",
                           "comment": f"thread {index}"}).encode()
        request = urllib.request.Request(
            live_server.url + URL, data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Token {token.key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status != 201:
                    errors.append(response.status)
        except urllib.error.HTTPError as exc:
            errors.append((exc.code, exc.read()[:200]))
        except Exception as exc:  # noqa: BLE001 - a dead thread must fail the test, not vanish
            errors.append(repr(exc))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    feedback = AuditLog.objects.get(pk=audit_log.pk).user_modifications["feedback"]
    assert sorted(entry["comment"] for entry in feedback) == sorted(f"thread {i}" for i in range(12))
    assert len({entry["event_id"] for entry in feedback}) == 12


def test_the_append_is_one_locked_select_a_claim_and_one_update_computed_by_postgresql(user, audit_log):
    for _ in range(3):
        answer_feedback_record(user=user, audit_log_id=audit_log.pk, rating="up", comment="c" * 500)
    with CaptureQueriesContext(connection) as queries:
        result = answer_feedback_record(user=user, audit_log_id=audit_log.pk, rating="down")
    assert result.feedback_count == 4 and not result.duplicate
    statements = [
        q["sql"] for q in queries.captured_queries if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE"))
    ]
    # The locked read, the claim of the entry's event_id (one id space with clicks and events), the append.
    assert len(statements) == 3
    assert statements[0].upper().startswith("SELECT") and "FOR UPDATE" in statements[0].upper()
    assert statements[1].upper().startswith('INSERT INTO "RUNBOOK_INTERACTION_EVENT_IDS"')
    assert statements[2].upper().startswith("UPDATE") and "jsonb_set" in statements[2]
    assert "c" * 500 not in statements[2]  # earlier entries are never sent back: PostgreSQL appends


def _click(client, audit_log, *, event_id, solution=None):
    runbook = solution or audit_log.ai_action_details["solutions_presented"][0]
    return client.post("/api/ai-helper/track-choice", data=json.dumps({
        "audit_log_id": str(audit_log.pk), "event_id": event_id,
        "choice_data": {"solution_chosen_id": runbook["id"], "solution_chosen_type": runbook["type"],
                        "user_action": "clicked_link"},
    }), content_type="application/json")


def _event(client, audit_log, *, event_id):
    return client.post("/api/ai-helper/events", data=json.dumps({"events": [{
        "event_id": event_id, "event_type": "viewed_detail", "audit_log_id": str(audit_log.pk),
        "runbook_id": audit_log.ai_action_details["solutions_presented"][0]["id"], "source": "chat_page",
        "client_timestamp": "2026-12-02T10:00:00Z",
    }]}), content_type="application/json")


def test_one_id_space_for_clicks_events_and_feedback(auth_client, user, audit_log):
    """docs/tracking.md "Repeated event ids": an id a click, an event or feedback already has is a conflict on
    every endpoint, whichever came first, and nothing is stored for the second."""
    click_id, event_id, feedback_id = (str(uuid.uuid4()) for _ in range(3))
    assert _click(auth_client, audit_log, event_id=click_id).status_code == 201
    assert _event(auth_client, audit_log, event_id=event_id).status_code == 201
    for taken in (click_id, event_id):
        response = _post(auth_client, {"audit_log_id": str(audit_log.pk), "rating": "up", "event_id": taken})
        assert response.status_code == 409 and response.json()["error"] == "conflict", response.content
    assert _post(auth_client, {"audit_log_id": str(audit_log.pk), "rating": "up", "event_id": feedback_id}
                 ).status_code == 201
    response = _click(auth_client, audit_log, event_id=feedback_id)
    assert response.status_code == 409, response.content
    batch = _event(auth_client, audit_log, event_id=feedback_id).json()
    assert batch["accepted"] == [] and batch["rejected"][0]["error"] == "conflict"
    audit_log.refresh_from_db()
    assert [entry["event_id"] for entry in audit_log.user_modifications["feedback"]] == [feedback_id]
    assert [click["event_id"] for click in audit_log.user_modifications["clicks"]] == [click_id]


def test_a_manual_solution_click_takes_its_id_too(auth_client, user):
    manual = {"rank": 1, "type": "manual", "id": "manual-1", "title": "check the dashboard"}
    from audit.details import PresentedSolution

    audit_log = AuditLogFactory(user=user, query="weird", presented=[PresentedSolution(**manual)])
    click_id = str(uuid.uuid4())
    assert _click(auth_client, audit_log, event_id=click_id, solution=manual).status_code == 201
    assert _click(auth_client, audit_log, event_id=click_id, solution=manual).json()["duplicate"] is True
    response = _post(auth_client, {"audit_log_id": str(audit_log.pk), "rating": "down", "event_id": click_id})
    assert response.status_code == 409, response.content


def test_another_users_feedback_id_is_a_conflict_that_says_nothing_about_it(client, user, audit_log):
    feedback_id = str(uuid.uuid4())
    answer_feedback_record(user=user, audit_log_id=audit_log.pk, rating="up", comment="secret", event_id=feedback_id)
    mallory = UserFactory(username="mallory")
    theirs = _answer(mallory)
    client.force_login(mallory)
    response = _post(client, {"audit_log_id": str(theirs.pk), "rating": "up", "event_id": feedback_id})
    assert response.status_code == 409 and "secret" not in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.user_modifications.get("feedback", []) == []
