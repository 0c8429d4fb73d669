import datetime as dt
import json
import uuid

import pytest
from django.core.cache import cache
from django.utils import timezone

from audit.models import RunbookInteractionEvent
from tests.audit.factories import AuditLogFactory
from tests.factories import GroupFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

URL = "/api/ai-helper/events"


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    cache.clear()


def _event(runbook, **overrides):
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "viewed_detail",
        "runbook_id": str(runbook.pk),
        "rank": 1,
        "source": "search_page",
        "client_timestamp": timezone.now().isoformat(),
    }
    event.update(overrides)
    return event


def _post(client, events):
    return client.post(URL, data=json.dumps({"events": events}), content_type="application/json")


def test_valid_events_are_stored_even_when_others_in_the_batch_are_invalid(auth_client):
    runbook = RunbookFactory()
    good = [_event(runbook), _event(runbook, event_type="feedback_positive", rank=None)]
    bad = [
        _event(runbook, event_type="succeeded"),  # server-only type
        _event(runbook, event_id="nope"),
        _event(runbook, runbook_id=str(uuid.uuid4())),
        _event(runbook, source="email"),
        _event(runbook, page_context=["not", "an", "object"]),
    ]
    response = _post(auth_client, [good[0], *bad, good[1]])
    assert response.status_code == 201, response.content
    body = response.json()
    assert sorted(body["accepted"]) == sorted(event["event_id"] for event in good)
    assert [item["index"] for item in body["rejected"]] == [1, 2, 3, 4, 5]
    assert "event_type" in body["rejected"][0]["errors"]
    assert "runbook_id" in body["rejected"][2]["errors"]
    assert RunbookInteractionEvent.objects.count() == 2


def test_duplicates_are_acknowledged_and_stored_once(auth_client):
    runbook = RunbookFactory()
    event = _event(runbook)
    assert _post(auth_client, [event]).status_code == 201
    response = _post(auth_client, [event, event])
    assert response.status_code == 200
    assert response.json()["duplicates"] == [event["event_id"], event["event_id"]]
    assert RunbookInteractionEvent.objects.filter(event_id=event["event_id"]).count() == 1


def test_far_off_client_timestamps_are_clamped_and_flagged(auth_client):
    runbook = RunbookFactory()
    future = _event(runbook, client_timestamp=(timezone.now() + dt.timedelta(days=400)).isoformat())
    past = _event(runbook, client_timestamp="2001-01-01T00:00:00Z")
    fine = _event(runbook)
    assert _post(auth_client, [future, past, fine]).status_code == 201
    stored = {str(row.event_id): row for row in RunbookInteractionEvent.objects.all()}
    now = timezone.now()
    assert stored[future["event_id"]].metadata["client_timestamp_clamped"] is True
    assert stored[future["event_id"]].client_timestamp <= now + dt.timedelta(minutes=5)
    assert stored[past["event_id"]].metadata["client_timestamp_original"].startswith("2001-01-01")
    assert stored[past["event_id"]].client_timestamp >= now - dt.timedelta(days=1, minutes=1)
    assert "client_timestamp_clamped" not in stored[fine["event_id"]].metadata


def test_restricted_runbooks_and_others_audit_logs_are_rejected(auth_client, other_user):
    restricted = RunbookFactory(allowed_groups=[GroupFactory(name="dba")])
    open_runbook = RunbookFactory()
    foreign = AuditLogFactory(user=other_user)
    response = _post(auth_client, [_event(restricted), _event(open_runbook, audit_log_id=str(foreign.pk))])
    assert response.status_code == 400
    errors = [item["errors"] for item in response.json()["rejected"]]
    assert errors == [{"runbook_id": ["Unknown runbook."]}, {"audit_log_id": ["Unknown audit log."]}]
    assert RunbookInteractionEvent.objects.count() == 0


def test_batch_limits(auth_client, settings):
    runbook = RunbookFactory()
    response = _post(auth_client, [_event(runbook) for _ in range(101)])
    assert response.status_code == 400
    assert "At most 100" in json.dumps(response.json())
    assert _post(auth_client, []).status_code == 400
    settings.API_MAX_BODY_BYTES = 4096
    response = _post(auth_client, [_event(runbook, metadata={"pad": "x" * 3000}) for _ in range(3)])
    assert response.status_code == 413
    assert RunbookInteractionEvent.objects.count() == 0


def test_anonymous_cannot_send_events(client):
    runbook = RunbookFactory()
    assert _post(client, [_event(runbook)]).status_code in (401, 403)


def test_a_number_beyond_a_double_is_rejected_with_its_event_and_the_rest_of_the_batch_is_kept(auth_client):
    """1e999 is valid JSON syntax but reads as infinity, which jsonb refuses: before, the whole batch failed with
    an HTML 500 and its valid events were lost."""
    runbook = RunbookFactory()

    def event(extra: str = "") -> tuple[str, str]:
        event_id = str(uuid.uuid4())
        return event_id, (f'{{"event_id": "{event_id}", "event_type": "viewed_detail", "runbook_id": "{runbook.pk}", '
                          f'"source": "direct", "client_timestamp": "{timezone.now().isoformat()}"{extra}}}')

    (good, first), (_, second), (_, third) = event(), event(', "metadata": {"k": 1e999}'), event(
        ', "page_context": {"scroll": [-1e400]}')
    response = auth_client.post("/api/ai-helper/events", f'{{"events": [{first}, {second}, {third}]}}',
                                content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["accepted"] == [good]
    assert [item["index"] for item in body["rejected"]] == [1, 2]
    rejected = json.dumps(body["rejected"])
    assert "metadata.k" in rejected and "page_context.scroll[0]" in rejected and "range" in rejected
    assert RunbookInteractionEvent.objects.count() == 1


def test_nul_characters_in_event_json_are_rejected_and_the_rest_of_the_batch_is_kept(auth_client):
    runbook = RunbookFactory()

    def event(**extra):
        return {"event_id": str(uuid.uuid4()), "event_type": "viewed_detail", "runbook_id": str(runbook.pk),
                "source": "direct", "client_timestamp": timezone.now().isoformat(), **extra}

    good = event()
    response = auth_client.post(
        "/api/ai-helper/events",
        json.dumps({"events": [good, event(metadata={"k": "a\u0000b"}), event(page_context={"a\u0000": 1})]}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["accepted"] == [good["event_id"]]
    assert [item["index"] for item in body["rejected"]] == [1, 2]
    assert "NUL" in json.dumps(body["rejected"])
    assert RunbookInteractionEvent.objects.count() == 1
