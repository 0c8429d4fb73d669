import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.authtoken.models import Token

from aihelper.chat.tracking_apis import TrackingThrottle
from audit.details import PresentedSolution
from audit.models import AuditLog, RunbookInteractionEvent
from audit.services.store import DuplicateEvent, EventInput, interaction_event_record
from audit.services.tracking import click_record
from tests.aihelper.factories import ChatSessionFactory
from tests.audit.factories import AuditLogFactory
from tests.factories import UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

URL = "/api/ai-helper/track-choice"


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    cache.clear()
    yield
    cache.clear()


def _answer(user, runbooks, session=None, query="disk full on db host"):
    return AuditLogFactory(user=user, session=session, query=query, presented=runbooks)


@pytest.fixture
def answer(user):
    session = ChatSessionFactory(user=user, title="disk")
    runbooks = [RunbookFactory(), RunbookFactory()]
    return _answer(user, runbooks, session=session), runbooks, session


def _post(client, body, **extra):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **extra)


def _choice(runbook, action="clicked_link", **more):
    return {"solution_chosen_id": str(runbook.pk), "solution_chosen_type": "runbook", "user_action": action, **more}


def test_n_clicks_leave_n_entries_and_n_events(auth_client, answer):
    audit_log, runbooks, _ = answer
    for index, runbook in enumerate([runbooks[0], runbooks[1], runbooks[0]], start=1):
        response = _post(auth_client, {"audit_log_id": str(audit_log.pk), "choice_data": _choice(runbook)})
        assert response.status_code == 201, response.content
        assert response.json()["click_count"] == index
    audit_log.refresh_from_db()
    clicks = audit_log.user_modifications["clicks"]
    assert [click["rank"] for click in clicks] == [1, 2, 1]
    assert all(click["time_to_decision_seconds"] >= 0 for click in clicks)
    assert audit_log.user_modifications["solution_chosen_id"] == str(runbooks[0].pk)
    events = RunbookInteractionEvent.objects.filter(audit_log=audit_log, event_type="clicked_link")
    assert sorted(events.values_list("rank", flat=True)) == [1, 1, 2]


def test_response_reports_rank_and_time_to_decision(auth_client, answer):
    audit_log, runbooks, _ = answer
    body = _post(auth_client, {"audit_log_id": str(audit_log.pk), "choice_data": _choice(runbooks[1])}).json()
    assert body["rank"] == 2 and body["audit_log_id"] == str(audit_log.pk)
    assert body["time_to_decision_seconds"] >= 0
    assert uuid.UUID(body["event_id"])


def test_session_mode_uses_the_latest_audit_log_that_presented_the_runbook(auth_client, user, answer):
    first, runbooks, session = answer
    other = RunbookFactory()
    second = _answer(user, [runbooks[1], runbooks[0]], session=session)
    _answer(user, [other], session=session)  # newest, but did not present runbooks[0]
    response = _post(auth_client, {"session_id": str(session.pk), "choice_data": _choice(runbooks[0])})
    assert response.status_code == 201
    assert response.json()["audit_log_id"] == str(second.pk)
    assert response.json()["rank"] == 2


def test_both_ids_must_agree(auth_client, user, answer):
    audit_log, runbooks, _ = answer
    other_session = ChatSessionFactory(user=user)
    response = _post(
        auth_client,
        {"audit_log_id": str(audit_log.pk), "session_id": str(other_session.pk), "choice_data": _choice(runbooks[0])},
    )
    assert response.status_code == 422
    assert "session_id" in response.json()["fields"]


def test_repeated_event_id_is_acknowledged_and_counted_once(auth_client, answer):
    audit_log, runbooks, _ = answer
    event_id = str(uuid.uuid4())
    body = {"audit_log_id": str(audit_log.pk), "event_id": event_id, "choice_data": _choice(runbooks[0])}
    assert _post(auth_client, body).status_code == 201
    again = _post(auth_client, body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    audit_log.refresh_from_db()
    assert len(audit_log.user_modifications["clicks"]) == 1
    assert RunbookInteractionEvent.objects.filter(event_id=event_id).count() == 1


def test_someone_elses_audit_log_or_session_is_404(client, other_user, answer):
    audit_log, runbooks, session = answer
    client.force_login(other_user)
    assert _post(client, {"audit_log_id": str(audit_log.pk), "choice_data": _choice(runbooks[0])}).status_code == 404
    assert _post(client, {"session_id": str(session.pk), "choice_data": _choice(runbooks[0])}).status_code == 404
    audit_log.refresh_from_db()
    assert audit_log.user_modifications["clicks"] == []


def test_anonymous_is_refused(client, answer):
    audit_log, runbooks, _ = answer
    response = _post(client, {"audit_log_id": str(audit_log.pk), "choice_data": _choice(runbooks[0])})
    assert response.status_code in (401, 403)
    assert "detail" in response.json()


def test_session_auth_requires_csrf(user, answer):
    audit_log, runbooks, _ = answer
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = _post(client, {"audit_log_id": str(audit_log.pk), "choice_data": _choice(runbooks[0])})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"audit_log_id": "not-a-uuid", "choice_data": {}}, 400, "audit_log_id"),
        ({"choice_data": {"solution_chosen_id": "R0", "solution_chosen_type": "runbook",
                          "user_action": "clicked_link"}}, 400, "audit_log_id"),
        ({"audit_log_id": "AUDIT", "choice_data": "clicked"}, 400, "choice_data"),
        ({"audit_log_id": "AUDIT", "choice_data": {"solution_chosen_type": "runbook"}}, 400, "choice_data"),
        ({"audit_log_id": "AUDIT", "choice_data": {"solution_chosen_id": "R0", "solution_chosen_type": "script",
                                                   "user_action": "clicked_link"}}, 400, "choice_data"),
        ({"audit_log_id": "AUDIT", "choice_data": {"solution_chosen_id": "R0", "solution_chosen_type": "runbook",
                                                   "user_action": "exploded"}}, 400, "choice_data"),
        ({"audit_log_id": "AUDIT", "choice_data": {"solution_chosen_id": "R0", "solution_chosen_type": "runbook",
                                                   "user_action": "clicked_link", "solution_chosen_rank": "first"}},
         400, "choice_data"),
        ({"audit_log_id": "AUDIT", "choice_data": {"solution_chosen_id": "OTHER", "solution_chosen_type": "runbook",
                                                   "user_action": "clicked_link"}}, 422, "solution_chosen_id"),
        ({"audit_log_id": "AUDIT", "choice_data": {"solution_chosen_id": "R0", "solution_chosen_type": "runbook",
                                                   "user_action": "clicked_link", "solution_chosen_rank": 2}},
         422, "solution_chosen_rank"),
        ({"audit_log_id": str(uuid.UUID(int=7)), "choice_data": {"solution_chosen_id": "R0",
          "solution_chosen_type": "runbook", "user_action": "clicked_link"}}, 404, None),
    ],
)
def test_bad_input_gets_a_clear_4xx(auth_client, answer, body, status, field):
    audit_log, runbooks, _ = answer
    text = json.dumps(body).replace("AUDIT", str(audit_log.pk)).replace('"R0"', f'"{runbooks[0].pk}"')
    text = text.replace('"OTHER"', f'"{uuid.uuid4()}"')
    response = auth_client.post(URL, data=text, content_type="application/json")
    assert response.status_code == status, response.content
    payload = response.json()
    assert payload["detail"]
    if field:
        assert field in payload["fields"], payload
    audit_log.refresh_from_db()
    assert audit_log.user_modifications["clicks"] == []


def test_non_json_and_oversized_bodies(auth_client, answer, settings):
    assert auth_client.post(URL, data="{not json", content_type="application/json").status_code == 400
    assert auth_client.post(URL, data="", content_type="application/json").status_code == 400
    settings.API_MAX_BODY_BYTES = 2048
    big = json.dumps({"audit_log_id": str(answer[0].pk), "choice_data": {"pad": "x" * 5000}})
    response = auth_client.post(URL, data=big, content_type="application/json")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    deep = "[" * 50 + "]" * 50
    response = auth_client.post(URL, data=deep, content_type="application/json")
    assert response.status_code == 400 and "nested" in response.json()["detail"]


def test_throttled_requests_get_429_with_retry_after(auth_client, answer, monkeypatch):
    audit_log, runbooks, _ = answer
    monkeypatch.setattr(TrackingThrottle, "THROTTLE_RATES", {"tracking": "2/min"})
    body = {"audit_log_id": str(audit_log.pk), "choice_data": _choice(runbooks[0])}
    assert [_post(auth_client, body).status_code for _ in range(2)] == [201, 201]
    response = _post(auth_client, body)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    audit_log.refresh_from_db()
    assert len(audit_log.user_modifications["clicks"]) == 2


def test_manual_solution_click_is_appended_without_a_runbook_event(auth_client, user):
    audit_log = AuditLogFactory(
        user=user, query="weird", presented=[PresentedSolution(rank=1, type="manual", id="manual-1", title="x")]
    )
    response = _post(
        auth_client,
        {"audit_log_id": str(audit_log.pk), "choice_data": {"solution_chosen_id": "manual-1",
                                                            "solution_chosen_type": "manual",
                                                            "user_action": "dismissed"}},
    )
    assert response.status_code == 201
    assert response.json()["click_count"] == 1
    audit_log.refresh_from_db()
    clicks = audit_log.user_modifications["clicks"]
    assert [(c["solution_chosen_id"], c["user_action"], c["rank"]) for c in clicks] == [("manual-1", "dismissed", 1)]
    assert RunbookInteractionEvent.objects.filter(audit_log=audit_log).count() == 0


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_clicks_over_http_leave_fifty_entries(live_server, django_user_model):
    owner = UserFactory(username="concurrent")
    token = Token.objects.create(user=owner)
    runbooks = [RunbookFactory(), RunbookFactory()]
    audit_log = _answer(owner, runbooks)
    errors: list = []

    def click(index: int) -> None:
        # Each click has its own event_id, so a retry after a dropped connection (the test server's
        # listen backlog is small) is safe: it is acknowledged, never counted twice.
        payload = {
            "audit_log_id": str(audit_log.pk),
            "event_id": str(uuid.uuid4()),
            "choice_data": _choice(runbooks[index % 2]),
        }
        body = json.dumps(payload).encode()
        request = urllib.request.Request(
            live_server.url + URL,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Token {token.key}"},
            method="POST",
        )
        for attempt in range(5):
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    if response.status not in (200, 201):
                        errors.append(response.status)
                    return
            except urllib.error.HTTPError as exc:
                errors.append((exc.code, exc.read()[:200]))
                return
            except (ConnectionError, urllib.error.URLError) as exc:
                if attempt == 4:
                    errors.append(repr(exc))
                time.sleep(0.2 * (attempt + 1))
            except Exception as exc:  # a dead thread must fail the test, not vanish
                errors.append(repr(exc))
                return

    threads = [threading.Thread(target=click, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    audit_log = AuditLog.objects.get(pk=audit_log.pk)
    assert len(audit_log.user_modifications["clicks"]) == 50
    assert len({click["event_id"] for click in audit_log.user_modifications["clicks"]}) == 50
    assert RunbookInteractionEvent.objects.filter(audit_log_id=audit_log.pk, event_type="clicked_link").count() == 50


@pytest.mark.django_db(transaction=True)
def test_a_click_refused_in_autocommit_leaves_nothing_behind_and_the_next_one_lands():
    """Outside any transaction the click function is one statement: a failure inside it (here the event id
    already belongs to another event) undoes its append too, and the connection stays usable."""
    owner = UserFactory()
    runbooks = [RunbookFactory(), RunbookFactory()]
    audit_log = _answer(owner, runbooks)
    taken = uuid.uuid4()
    interaction_event_record(event=EventInput(runbook_id=runbooks[1].pk, event_type="viewed_detail", event_id=taken))
    click = {
        "user": owner,
        "audit_log_id": audit_log.pk,
        "solution_id": str(runbooks[0].pk),
        "solution_type": "runbook",
        "user_action": "clicked_link",
    }
    with pytest.raises(DuplicateEvent):
        click_record(**click, event_id=taken)
    audit_log.refresh_from_db()
    assert audit_log.user_modifications["clicks"] == []
    assert RunbookInteractionEvent.objects.get(event_id=taken).event_type == "viewed_detail"
    result = click_record(**click)
    audit_log.refresh_from_db()
    assert [entry["event_id"] for entry in audit_log.user_modifications["clicks"]] == [str(result.event_id)]
