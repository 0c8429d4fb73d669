"""POST /api/alerts/alertmanager and /api/alerts/grafana: storage, repeats, resolves, jobs, tokens."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from procrastinate.contrib.django.models import ProcrastinateJob

from alerts.models import Alert, AlertGroup, AlertNotification, AlertReceiver
from alerts.receivers import alert_receiver_revoke
from tests.alerts.factories import AlertReceiverFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
ALERTMANAGER_URL = "/api/alerts/alertmanager"
GRAFANA_URL = "/api/alerts/grafana"
TASK = "alerts.recommend"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def post(client, body, *, token: str | None, url: str = ALERTMANAGER_URL, raw: bytes | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", headers=headers)


def jobs() -> list[int]:
    return sorted(job.args["alert_id"] for job in ProcrastinateJob.objects.filter(task_name=TASK))


@pytest.fixture
def receiver():
    return AlertReceiverFactory(name="prod-alertmanager")


def test_the_urls_are_the_ones_alertmanager_is_configured_with():
    assert reverse("alerts_webhook:alertmanager") == ALERTMANAGER_URL
    assert reverse("alerts_webhook:grafana") == GRAFANA_URL


def test_a_firing_group_is_stored_with_one_job_per_alert(client, receiver):
    response = post(client, fixture("alertmanager_firing.json"), token=receiver.token)

    assert response.status_code == 200, response.content
    group = AlertGroup.objects.get()
    assert response.json() == {
        "stored": 3,
        "new": 3,
        "resolved": 0,
        "group": group.pk,
        "notification": AlertNotification.objects.get().pk,
        "format": "alertmanager",
    }
    assert group.receiver == receiver
    assert group.group_key == '{}/{severity="critical"}:{alertname="DiskFull"}'
    assert group.common_labels["severity"] == "critical"
    assert group.external_url == "http://alertmanager.example.org:9093"
    alerts = {alert.fingerprint: alert for alert in Alert.objects.all()}
    assert set(alerts) == {"1a30ba71cca2921f", "2b41cb82ddb3a32a", "3c52dc93eec4b43b"}
    first = alerts["1a30ba71cca2921f"]
    # Nanoseconds cut to microseconds (PostgreSQL's precision), offsets to UTC.
    assert first.starts_at == dt.datetime(2026, 11, 30, 22, 1, 15, 123456, tzinfo=dt.UTC)
    assert alerts["2b41cb82ddb3a32a"].starts_at == dt.datetime(2026, 11, 30, 22, 11, tzinfo=dt.UTC)
    assert first.ends_at is None  # Go's zero time: not ended
    assert first.status == "firing"
    assert first.alertname == "DiskFull"
    assert first.labels["instance"] == "db-1:9100"
    assert first.annotations["description"].startswith("/var/lib/postgresql on db-1")
    assert first.generator_url.startswith("http://prometheus.example.org:9090/graph")
    assert first.first_received_at == first.last_seen
    assert first.resolved_received_at is None
    assert jobs() == sorted(alert.pk for alert in alerts.values())
    assert set(ProcrastinateJob.objects.values_list("queue_name", flat=True)) == {"alerts"}


def test_the_body_is_kept_as_received_with_unknown_fields(client, receiver):
    body = fixture("alertmanager_firing.json")
    body["x-extension"] = {"nested": [1, 2, {"k": "v"}]}
    body["alerts"][0]["x-alert-field"] = "kept"
    post(client, body, token=receiver.token)

    notification = AlertNotification.objects.get()
    assert notification.payload == body
    assert notification.alert_count == 3
    assert notification.status == "firing"
    assert Alert.objects.get(fingerprint="1a30ba71cca2921f").extra == {"x-alert-field": "kept"}


def test_a_repeat_updates_last_seen_and_labels_and_defers_nothing(client, receiver):
    body = fixture("alertmanager_firing.json")
    post(client, body, token=receiver.token)
    before = {alert.fingerprint: alert for alert in Alert.objects.all()}
    jobs_before = jobs()

    body["alerts"][0]["annotations"]["description"] = "now 99% full"
    body["alerts"][0]["labels"]["owner"] = "dba"
    response = post(client, body, token=receiver.token)

    assert response.json()["stored"] == 3 and response.json()["new"] == 0 and response.json()["resolved"] == 0
    assert Alert.objects.count() == 3
    assert AlertGroup.objects.count() == 1
    assert AlertNotification.objects.count() == 2
    first = Alert.objects.get(fingerprint="1a30ba71cca2921f")
    assert first.pk == before["1a30ba71cca2921f"].pk
    assert first.last_seen > before["1a30ba71cca2921f"].last_seen
    assert first.first_received_at == before["1a30ba71cca2921f"].first_received_at
    assert first.annotations["description"] == "now 99% full"
    assert first.labels["owner"] == "dba"
    assert jobs() == jobs_before


def test_a_resolve_sets_ends_at_status_and_received_time(client, receiver):
    post(client, fixture("alertmanager_firing.json"), token=receiver.token)
    jobs_before = jobs()

    response = post(client, fixture("alertmanager_resolved.json"), token=receiver.token)

    assert response.status_code == 200
    assert response.json()["stored"] == 3 and response.json()["new"] == 0 and response.json()["resolved"] == 3
    first = Alert.objects.get(fingerprint="1a30ba71cca2921f")
    assert first.status == "resolved"
    assert first.ends_at == dt.datetime(2026, 11, 30, 23, 40, 0, 500000, tzinfo=dt.UTC)
    assert first.resolved_received_at == first.last_seen
    assert AlertGroup.objects.get().status == "resolved"
    assert jobs() == jobs_before

    again = post(client, fixture("alertmanager_resolved.json"), token=receiver.token)
    assert again.json()["resolved"] == 0  # already resolved: the first resolve's times stay
    assert Alert.objects.get(fingerprint="1a30ba71cca2921f").resolved_received_at == first.resolved_received_at


def test_firing_after_a_resolve_with_the_same_start_reopens_the_alert(client, receiver):
    """Prometheus lost Alertmanager for longer than resolve_timeout, then sent the alert again with its
    original startsAt: the newest notification wins (one group's notifications arrive in order)."""
    post(client, fixture("alertmanager_firing.json"), token=receiver.token)
    post(client, fixture("alertmanager_resolved.json"), token=receiver.token)

    response = post(client, fixture("alertmanager_firing.json"), token=receiver.token)

    assert response.json()["new"] == 0 and len(jobs()) == 3  # the same rows, recommended already
    assert set(Alert.objects.values_list("status", "ends_at", "resolved_received_at")) == {("firing", None, None)}


def test_another_receivers_token_cannot_change_an_alert(client, receiver):
    post(client, fixture("alertmanager_firing.json"), token=receiver.token)
    intruder = AlertReceiverFactory(name="someone-else")

    response = post(client, fixture("alertmanager_resolved.json"), token=intruder.token)

    assert response.status_code == 200 and (response.json()["stored"], response.json()["resolved"]) == (0, 0)
    assert set(Alert.objects.values_list("status", flat=True)) == {"firing"}
    assert set(Alert.objects.values_list("receiver__name", flat=True)) == {receiver.name}


def test_a_group_key_longer_than_an_index_entry_is_stored(client, receiver):
    body = fixture("alertmanager_firing.json")
    body["groupKey"] = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000))  # ~9 kB of UTF-8
    assert post(client, body, token=receiver.token).status_code == 200
    assert post(client, body, token=receiver.token).json()["new"] == 0
    assert AlertGroup.objects.get().group_key == body["groupKey"]


def test_firing_again_with_a_new_starts_at_is_a_new_alert_with_a_new_job(client, receiver):
    post(client, fixture("alertmanager_firing.json"), token=receiver.token)
    post(client, fixture("alertmanager_resolved.json"), token=receiver.token)
    refire = fixture("alertmanager_firing.json")
    refire["alerts"] = refire["alerts"][:1]
    refire["alerts"][0]["startsAt"] = "2026-12-01T00:30:00Z"

    response = post(client, refire, token=receiver.token)

    assert response.json()["new"] == 1
    rows = Alert.objects.filter(fingerprint="1a30ba71cca2921f").order_by("starts_at")
    assert [row.status for row in rows] == ["resolved", "firing"]
    assert rows[1].pk in jobs()
    assert len(jobs()) == 4


def test_an_alert_that_arrives_already_resolved_is_stored_without_a_job(client, receiver):
    response = post(client, fixture("alertmanager_resolved.json"), token=receiver.token)

    assert response.json() == {**response.json(), "stored": 3, "new": 3, "resolved": 3}
    assert set(Alert.objects.values_list("status", flat=True)) == {"resolved"}
    assert jobs() == []


def test_a_resolve_without_ends_at_ends_when_it_was_received(client, receiver):
    body = fixture("alertmanager_resolved.json")
    body["alerts"][0]["endsAt"] = "0001-01-01T00:00:00Z"
    post(client, body, token=receiver.token)
    alert = Alert.objects.get(fingerprint="1a30ba71cca2921f")
    assert alert.ends_at == alert.resolved_received_at


def test_the_same_alert_twice_in_one_body_is_one_row(client, receiver):
    body = fixture("alertmanager_firing.json")
    duplicate = copy.deepcopy(body["alerts"][1])
    duplicate["startsAt"] = "2026-11-30T22:11:00Z"  # the same instant as "23:11:00+01:00"
    duplicate["annotations"]["description"] = "the later copy"
    body["alerts"].append(duplicate)

    response = post(client, body, token=receiver.token)

    assert response.status_code == 200
    assert response.json()["stored"] == 3 and response.json()["new"] == 3
    assert Alert.objects.get(fingerprint="2b41cb82ddb3a32a").annotations["description"] == "the later copy"
    assert len(jobs()) == 3


def test_grafana_payload_on_either_url_is_stored_with_its_extras(client, receiver):
    body = fixture("grafana_firing.json")
    response = post(client, body, token=receiver.token)

    assert response.status_code == 200, response.content
    assert response.json()["format"] == "grafana" and response.json()["new"] == 2
    group = AlertGroup.objects.get()
    assert group.format == "grafana"
    assert group.title == "[FIRING:2]  (blue)"
    assert group.message.startswith("**Firing**")
    memory = Alert.objects.get(fingerprint="c6eadffa33fcdf37")
    assert memory.starts_at == dt.datetime(2026, 11, 30, 7, 51, 3, 157076, tzinfo=dt.UTC)
    assert memory.extra["values"] == {"B": 44.23943737541908, "C": 1}
    assert memory.extra["dashboardURL"] == "https://grafana.example.org/d/abc123"
    assert memory.extra["panelURL"].endswith("viewPanel=4")
    assert memory.extra["silenceURL"].startswith("https://grafana.example.org/alerting/silence/new")
    assert memory.extra["imageURL"].endswith(".png")
    assert memory.extra["valueString"].startswith("[ var='B'")
    assert len(jobs()) == 2

    alias = post(client, body, token=receiver.token, url=GRAFANA_URL)
    assert alias.status_code == 200 and alias.json()["new"] == 0 and alias.json()["group"] == group.pk


def test_grafana_without_fingerprints_gets_alertmanagers_fingerprint_of_the_labels(client, receiver):
    body = fixture("grafana_firing.json")
    for alert in body["alerts"]:
        del alert["fingerprint"]
    post(client, body, token=receiver.token, url=GRAFANA_URL)
    fingerprints = set(Alert.objects.values_list("fingerprint", flat=True))
    assert len(fingerprints) == 2 and all(len(value) == 16 for value in fingerprints)


def test_groups_are_per_receiver(client, receiver):
    other = AlertReceiverFactory(name="staging-alertmanager")
    post(client, fixture("alertmanager_firing.json"), token=receiver.token)
    response = post(client, fixture("alertmanager_firing.json"), token=other.token)
    assert AlertGroup.objects.count() == 2
    assert response.json()["new"] == 0  # the same alert instances: one row each, in the first group
    assert set(Alert.objects.values_list("group__receiver__name", flat=True)) == {"prod-alertmanager"}


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "Authorization: Bearer"),
        ("Basic dXNlcjpwYXNz", "Authorization: Bearer"),
        ("Bearer", "Authorization: Bearer"),
        ("Bearer not-a-token", "does not belong to any alert receiver"),
    ],
)
def test_a_missing_or_wrong_token_is_401_and_stores_nothing(client, receiver, authorization, detail):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post(
        ALERTMANAGER_URL,
        data=json.dumps(fixture("alertmanager_firing.json")),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert detail in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert (AlertGroup.objects.count(), AlertNotification.objects.count(), Alert.objects.count()) == (0, 0, 0)
    assert ProcrastinateJob.objects.count() == 0


def test_a_revoked_receiver_is_refused(client, receiver):
    alert_receiver_revoke(name=receiver.name)
    response = post(client, fixture("alertmanager_firing.json"), token=receiver.token)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert AlertNotification.objects.count() == 0


def test_the_bearer_scheme_is_case_insensitive_and_last_used_is_recorded(client, receiver):
    response = client.post(
        ALERTMANAGER_URL,
        data=json.dumps(fixture("alertmanager_firing.json")),
        content_type="application/json",
        headers={"Authorization": f"bearer {receiver.token}"},
    )
    assert response.status_code == 200
    assert AlertReceiver.objects.get(pk=receiver.pk).last_used_at is not None


def test_only_post_is_allowed(client, receiver):
    response = client.get(ALERTMANAGER_URL, headers={"Authorization": f"Bearer {receiver.token}"})
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"] == "method_not_allowed"


def _group_of(size: int, run: str) -> dict:
    body = fixture("alertmanager_firing.json")
    template = body["alerts"][0]
    body["groupKey"] = f"{{}}:{{run={run}}}"
    body["alerts"] = []
    for index in range(size):
        alert = copy.deepcopy(template)
        alert["labels"]["instance"] = f"{run}-{index}:9100"
        alert["fingerprint"] = f"{run}{index:08x}"
        body["alerts"].append(alert)
    return body


def test_a_post_takes_the_same_few_queries_for_1_or_100_alerts(client, receiver):
    post(client, _group_of(1, "warm"), token=receiver.token)  # last_used_at written: not counted below
    counts = {}
    for size in (1, 100):
        with CaptureQueriesContext(connection) as captured:
            response = post(client, _group_of(size, f"s{size}"), token=receiver.token)
        assert response.json()["new"] == size
        counts[size] = len(captured)
    # The token lookup, the store statement, the job batch (transaction control aside).
    assert counts[1] == counts[100] <= 5, counts
    assert len(jobs()) == 102
