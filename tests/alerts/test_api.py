"""GET /api/alerts/ (alerts/apis.py): alerts by status, newest first, each with the runbooks the reader may
see re-ranked 1..n; paginated; session or token auth; not audited."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from alerts.apis import PAGE_SIZE
from alerts.models import RecommendationEvidence
from audit.models import AuditLog
from tests.alerts.page_rows import page_alert, page_group, rank_runbooks
from tests.factories import GroupFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

URL = "/api/alerts/"


def test_firing_alerts_with_the_readers_ranking(auth_client):
    group = page_group(labels={"alertname": "KubePodCrashLooping"}, key="{}:{alertname=\"KubePodCrashLooping\"}")
    older = page_alert(group=group, minutes_ago=30, annotations={"description": "restarts"})
    newer = page_alert(group=group, minutes_ago=5)
    page_alert(minutes_ago=60, resolved_minutes_ago=10)
    hidden = RunbookFactory(slug="dba/secret", name="Secret", allowed_groups=[GroupFactory(name="dba")])
    visible = RunbookFactory(slug="k8s/pod-crash-looping", name="KubePodCrashLooping")
    rank_runbooks(older, (hidden, 0.99, RecommendationEvidence.LINKED), (visible, 0.7))

    response = auth_client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2 and body["next"] is None and body["previous"] is None
    assert [row["id"] for row in body["results"]] == [newer.pk, older.pk]
    row = body["results"][1]
    assert row["fingerprint"] == older.fingerprint and row["status"] == "firing" and row["ends_at"] is None
    assert row["alertname"] == "KubePodCrashLooping" and row["labels"]["severity"] == "critical"
    assert row["annotations"] == {"summary": "KubePodCrashLooping is firing", "description": "restarts"}
    assert row["group"] == {"key": "{}:{alertname=\"KubePodCrashLooping\"}",
                            "labels": {"alertname": "KubePodCrashLooping"}}
    assert row["recommendation_state"] == "done"
    assert row["presentation_strategy"] == "single_solution"
    assert row["recommendations"] == [{
        "slug": "k8s/pod-crash-looping", "title": "KubePodCrashLooping", "confidence": 0.7, "rank": 1,
        "recommended": True, "reason": "Search: similar in meaning (80%)", "evidence": "search",
        "url": f"/runbooks/{visible.pk}/",
    }]
    assert body["results"][0]["recommendations"] == []
    assert AuditLog.objects.count() == 0  # the API does not audit


def test_resolved_alerts(auth_client):
    page_alert(minutes_ago=5)
    resolved = page_alert(minutes_ago=60, resolved_minutes_ago=10)
    body = auth_client.get(URL, {"status": "resolved"}).json()
    assert [row["id"] for row in body["results"]] == [resolved.pk]
    assert body["results"][0]["status"] == "resolved" and body["results"][0]["ends_at"]


def test_an_invalid_status_is_a_400_naming_the_field(auth_client):
    response = auth_client.get(URL, {"status": "burning"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and "status" in body["fields"]
    assert "burning" in body["fields"]["status"][0]


def test_authentication_by_session_or_token(client, user):
    assert client.get(URL).status_code == 401
    token = Token.objects.create(user=user)
    assert client.get(URL, HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200


def test_pages_of_alerts_in_a_fixed_number_of_queries(auth_client):
    runbooks = [RunbookFactory() for _ in range(3)]
    for index in range(PAGE_SIZE + 5):
        alert = page_alert(minutes_ago=index + 1)
        rank_runbooks(alert, *[(runbook, 0.9 - 0.2 * rank) for rank, runbook in enumerate(runbooks)])
    with CaptureQueriesContext(connection) as captured:
        first = auth_client.get(URL).json()
    assert len(first["results"]) == PAGE_SIZE and first["count"] == PAGE_SIZE + 5
    assert first["next"].endswith("/api/alerts/?page=2")
    assert len(captured.captured_queries) <= 8
    second = auth_client.get(first["next"]).json()
    assert len(second["results"]) == 5 and second["previous"]
    assert auth_client.get(URL, {"page": 9}).status_code == 404


def test_the_schema_documents_the_endpoint(auth_client):
    schema = auth_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/alerts/"]["get"]
    assert operation["operationId"] == "alerts_list"
    assert {parameter["name"] for parameter in operation["parameters"]} >= {"status", "page"}
    assert set(operation["responses"]) >= {"200", "400", "401"}
    page = schema["components"]["schemas"]["AlertPage"]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    alert = schema["components"]["schemas"]["Alert"]
    assert {"recommendations", "group", "recommendation_state"} <= set(alert["properties"])
