"""What the webhooks refuse (400 naming the field, 413 past the body limit) and the text they take anyway."""

from __future__ import annotations

import json

import pytest
from django.http import HttpRequest
from django.test import RequestFactory

from aihelper.core.body_limits import body_limit
from alerts.intake import MAX_ALERTS, MAX_BODY_BYTES, MAX_LABEL_VALUE_CHARS
from alerts.models import Alert, AlertGroup, AlertNotification
from alerts.webhook_views import alertmanager_webhook
from tests.alerts.factories import AlertReceiverFactory
from tests.alerts.test_webhook import ALERTMANAGER_URL, GRAFANA_URL, fixture, jobs, post

pytestmark = pytest.mark.django_db


def _core_limit_for(path: str) -> int | None:
    request = HttpRequest()
    request.path_info = path
    return body_limit(request)


@pytest.fixture
def receiver():
    return AlertReceiverFactory(name="prod-alertmanager")


def _with(body: dict, path: list, value) -> dict:
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()

ALERTMANAGER_CASES = [
    (["version"], _DELETE, "version", 'must be "4"'),
    (["version"], "3", "version", 'not "3"'),
    (["status"], "pending", "status", 'must be "firing" or "resolved"'),
    (["status"], _DELETE, "status", "is required"),
    (["groupKey"], _DELETE, "groupKey", "is required"),
    (["groupKey"], "", "groupKey", "must not be empty"),
    (["groupKey"], 7, "groupKey", "must be a string"),
    (["groupLabels"], ["alertname"], "groupLabels", "must be an object of strings"),
    (["commonLabels", "severity"], 2, "commonLabels.severity", "must be a string"),
    (["commonAnnotations", ""], "x", "commonAnnotations.", "a name must be"),
    (["externalURL"], ["http://x"], "externalURL", "must be a string"),
    (["truncatedAlerts"], -1, "truncatedAlerts", "whole number"),
    (["truncatedAlerts"], True, "truncatedAlerts", "whole number"),
    (["truncatedAlerts"], "2", "truncatedAlerts", "whole number"),
    (["alerts"], _DELETE, "alerts", "non-empty list"),
    (["alerts"], [], "alerts", "non-empty list"),
    (["alerts"], {"0": {}}, "alerts", "non-empty list"),
    (["alerts", 1], "firing", "alerts[1]", "must be an object"),
    (["alerts", 2, "status"], "FIRING", "alerts[2].status", 'must be "firing" or "resolved"'),
    (["alerts", 2, "labels"], _DELETE, "alerts[2].labels", "is required"),
    (["alerts", 2, "labels"], "severity=critical", "alerts[2].labels", "must be an object of strings"),
    (["alerts", 2, "labels", "severity"], None, "alerts[2].labels.severity", "must be a string"),
    (["alerts", 2, "annotations", "summary"], {"text": "x"}, "alerts[2].annotations.summary", "must be a string"),
    (["alerts", 2, "startsAt"], "yesterday", "alerts[2].startsAt", "not an RFC 3339 time"),
    (["alerts", 2, "startsAt"], "2026-11-30", "alerts[2].startsAt", "not an RFC 3339 time"),
    (["alerts", 2, "startsAt"], "2026-11-30T22:00:00", "alerts[2].startsAt", "not an RFC 3339 time"),
    (["alerts", 2, "startsAt"], "2026-02-30T22:00:00Z", "alerts[2].startsAt", "not an RFC 3339 time"),
    (["alerts", 2, "startsAt"], "0001-01-01T00:00:00+01:00", "alerts[2].startsAt", "not an RFC 3339 time"),
    (["alerts", 2, "startsAt"], 1764540000, "alerts[2].startsAt", "RFC 3339 time string"),
    (["alerts", 2, "startsAt"], _DELETE, "alerts[2].startsAt", "is required"),
    (["alerts", 2, "endsAt"], "soon", "alerts[2].endsAt", "not an RFC 3339 time"),
    (["alerts", 2, "generatorURL"], 42, "alerts[2].generatorURL", "must be a string"),
    (["alerts", 2, "fingerprint"], "", "alerts[2].fingerprint", "1 to 64 characters"),
    (["alerts", 2, "fingerprint"], "f" * 65, "alerts[2].fingerprint", "1 to 64 characters"),
    (["alerts", 2, "fingerprint"], 12345, "alerts[2].fingerprint", "1 to 64 characters"),
]


@pytest.mark.parametrize(("path", "value", "field", "message"), ALERTMANAGER_CASES)
def test_an_invalid_alertmanager_field_is_400_naming_it(client, receiver, path, value, field, message):
    body = _with(fixture("alertmanager_firing.json"), path, value)
    response = post(client, body, token=receiver.token)

    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["error"] == "invalid"
    assert answer["detail"].startswith(f"{field}: ")
    assert message in answer["detail"]
    assert field in answer["fields"]
    assert (AlertGroup.objects.count(), AlertNotification.objects.count(), Alert.objects.count()) == (0, 0, 0)
    assert jobs() == []


GRAFANA_CASES = [
    (["orgId"], "1", "orgId", "must be an integer"),
    (["version"], "4", "version", 'must be "1"'),
    (["title"], 3, "title", "must be a string"),
    (["alerts", 0, "values"], [44.2], "alerts[0].values", "object of numbers"),
    (["alerts", 0, "values", "B"], "44.2", "alerts[0].values.B", "must be a number"),
    (["alerts", 0, "dashboardURL"], None, "alerts[0].dashboardURL", "must be a string"),
    (["alerts", 0, "silenceURL"], 1, "alerts[0].silenceURL", "must be a string"),
    (["alerts", 0, "valueString"], [], "alerts[0].valueString", "must be a string"),
]


@pytest.mark.parametrize(("path", "value", "field", "message"), GRAFANA_CASES)
def test_an_invalid_grafana_field_is_400_naming_it(client, receiver, path, value, field, message):
    body = _with(fixture("grafana_firing.json"), path, value)
    response = post(client, body, token=receiver.token, url=GRAFANA_URL)
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(f"{field}: ") and message in response.json()["detail"]


def test_grafana_may_leave_out_the_version(client, receiver):
    body = _with(fixture("grafana_firing.json"), ["version"], _DELETE)
    assert post(client, body, token=receiver.token).status_code == 200


def test_every_problem_of_a_body_is_named(client, receiver):
    body = fixture("alertmanager_firing.json")
    body["status"] = "bad"
    body["alerts"][0]["startsAt"] = "bad"
    body["alerts"][2]["labels"]["job"] = 1
    fields = post(client, body, token=receiver.token).json()["fields"]
    assert set(fields) == {"status", "alerts[0].startsAt", "alerts[2].labels.job"}


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": 1e999}', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"firing"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "nested deeper"),
        (b'{"status": "firing", "status": "resolved"}', 'the key "status" more than once'),
        (b'{"alerts": [{"labels": {"alertname": "A", "alertname": "B"}}]}', 'the key "alertname" more than once'),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(client, receiver, raw, detail):
    response = post(client, None, token=receiver.token, raw=raw)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


def test_a_body_over_the_limit_is_413_json(client, receiver):
    response = post(client, None, token=receiver.token, raw=b" " * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert AlertNotification.objects.count() == 0


def _many_alerts(count: int) -> dict:
    body = fixture("alertmanager_firing.json")
    template = body["alerts"][0]
    body["alerts"] = [
        {**template, "labels": {**template["labels"], "instance": f"host-{index}"}, "fingerprint": f"{index:016x}"}
        for index in range(count)
    ]
    return body


def _view(receiver, raw: bytes):
    """The view alone, without the project's middleware: its own limits."""
    request = RequestFactory().post(
        ALERTMANAGER_URL,
        data=raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {receiver.token}"},
    )
    return alertmanager_webhook(request)


def test_the_view_refuses_a_body_over_its_limit_with_413(receiver):
    response = _view(receiver, b" " * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert json.loads(response.content)["error"] == "payload_too_large"


def test_the_view_refuses_more_alerts_than_its_limit_with_400(receiver):
    response = _view(receiver, json.dumps(_many_alerts(MAX_ALERTS + 1)).encode())
    assert response.status_code == 400
    assert (
        json.loads(response.content)["detail"]
        == f"alerts: has {MAX_ALERTS + 1} alerts; the limit is {MAX_ALERTS} per notification"
    )


def test_the_view_takes_a_full_size_group(receiver):
    raw = json.dumps(_many_alerts(MAX_ALERTS)).encode()
    assert 64 * 1024 < len(raw) < MAX_BODY_BYTES
    response = _view(receiver, raw)
    assert response.status_code == 200
    assert json.loads(response.content)["new"] == MAX_ALERTS


def test_a_full_size_group_passes_the_projects_body_limit(client, receiver):
    # The rest of /api/ keeps its 64 KiB; the webhooks have their own limit, checked before the body is read.
    assert _core_limit_for("/api/ai-helper/query") == 64 * 1024
    assert _core_limit_for(ALERTMANAGER_URL) == _core_limit_for(GRAFANA_URL) == MAX_BODY_BYTES
    response = post(client, _many_alerts(MAX_ALERTS), token=receiver.token)
    assert response.status_code == 200


def test_more_alerts_than_the_limit_is_400_through_the_middleware(client, receiver):
    response = post(client, _many_alerts(MAX_ALERTS + 1), token=receiver.token)
    assert response.status_code == 400


def test_unstorable_text_is_replaced_and_stored_not_refused(client, receiver):
    body = fixture("alertmanager_firing.json")
    alert = body["alerts"][0]
    alert["labels"]["severity"] = "crit\ud800ical"
    alert["labels"]["bad\x00name"] = "v\x00"
    alert["annotations"]["summary"] = "lone low \udfff and NUL \x00 end"
    body["commonAnnotations"]["note"] = "\udc00"
    body["x-unknown"] = {"\ud801": ["\x00"]}
    raw = json.dumps(body).encode()  # ensure_ascii: the escapes \ud800, \u0000 as a client sends them
    assert b"\\ud800" in raw and b"\\u0000" in raw

    response = post(client, None, token=receiver.token, raw=raw)

    assert response.status_code == 200, response.content
    stored = Alert.objects.get(fingerprint=alert["fingerprint"])
    assert stored.labels["severity"] == "crit\ufffdical"
    assert stored.labels["bad\ufffdname"] == "v\ufffd"
    assert stored.annotations["summary"] == "lone low \ufffd and NUL \ufffd end"
    payload = AlertNotification.objects.get().payload
    assert payload["x-unknown"] == {"\ufffd": ["\ufffd"]}
    assert AlertGroup.objects.get().common_annotations["note"] == "\ufffd"


def test_any_other_unicode_is_kept_exactly(client, receiver):
    body = fixture("alertmanager_firing.json")
    text = "😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ‮rtl‬ e\u0301 日本語 \u2028 \ufeff \U0010ffff tab\t"
    body["alerts"][0]["annotations"]["summary"] = text
    body["alerts"][0]["labels"]["zone"] = "ζώνη-1"
    response = post(client, None, token=receiver.token, raw=json.dumps(body, ensure_ascii=False).encode())
    assert response.status_code == 200
    stored = Alert.objects.get(fingerprint="1a30ba71cca2921f")
    assert stored.annotations["summary"] == text
    assert stored.labels["zone"] == "ζώνη-1"


def test_an_error_quoting_unstorable_text_is_printable(client, receiver):
    body = fixture("alertmanager_firing.json")
    body["status"] = "\ud800"
    response = post(client, body, token=receiver.token)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("status: ")


def test_a_value_over_its_limit_is_cut_not_refused(client, receiver):
    body = fixture("alertmanager_firing.json")
    body["alerts"][2]["labels"]["severity"] = "x" * (MAX_LABEL_VALUE_CHARS + 10)
    response = post(client, body, token=receiver.token)
    assert response.status_code == 200 and response.json()["new"] == len(body["alerts"])
    severity = Alert.objects.get(fingerprint=body["alerts"][2]["fingerprint"]).labels["severity"]
    assert len(severity) == MAX_LABEL_VALUE_CHARS and severity.endswith("…")
    # The body as received keeps the whole value.
    stored = AlertNotification.objects.get().payload["alerts"][2]["labels"]["severity"]
    assert len(stored) == MAX_LABEL_VALUE_CHARS + 10


@pytest.mark.parametrize(("ends_at", "accepted"), [
    ("2026-11-30T22:29:59Z", False),  # a second before it started
    ("2026-11-30T23:29:00+01:00", False),  # the same moment minus a minute, in another offset
    ("2026-11-30T22:30:00Z", True),  # resolved the instant it started
    ("2026-11-30T22:45:00Z", True),
])
def test_a_resolved_alert_cannot_end_before_it_started(client, receiver, ends_at, accepted):
    body = fixture("alertmanager_firing.json")
    body["alerts"][2].update(status="resolved", endsAt=ends_at)  # startsAt 2026-11-30T22:30:00Z
    response = post(client, body, token=receiver.token)

    if accepted:
        assert response.status_code == 200, response.content
        stored = Alert.objects.get(starts_at="2026-11-30T22:30:00Z")
        assert stored.ends_at.isoformat() == ends_at.replace("Z", "+00:00")
        return
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["detail"].startswith("alerts[2].endsAt: ")
    assert "is before startsAt" in answer["detail"]
    assert (AlertNotification.objects.count(), Alert.objects.count()) == (0, 0)
    assert jobs() == []
