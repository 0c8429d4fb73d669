"""No body is a 500: bounded fuzzing over webhook-shaped payloads, any JSON and any bytes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.alerts.factories import AlertReceiverFactory
from tests.alerts.test_webhook import ALERTMANAGER_URL, GRAFANA_URL

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Text as clients can send it: any character, plus the ones PostgreSQL refuses and JSON's own specials.
texts = st.text(
    st.one_of(st.characters(), st.sampled_from(["\x00", "\ud800", "\udfff", "\\", '"', "😀", "\u202e"])),
    max_size=12,
)
scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | texts
)
any_json = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=10,
)
string_maps = st.dictionaries(st.text(st.characters(), min_size=1, max_size=8) | texts, texts, max_size=4)


@st.composite
def rfc3339(draw) -> str:
    moment = draw(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)))
    minutes = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    offset = "Z" if minutes == 0 else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    fraction = draw(st.sampled_from(["", ".5", ".123456789"]))
    return f"{moment.isoformat(timespec='seconds')}{fraction}{offset}"


def maybe(strategy):
    """Mostly the valid shape, sometimes anything at all."""
    return st.one_of(*[strategy] * 8, any_json)


alerts = st.fixed_dictionaries(
    {
        "status": maybe(st.sampled_from(["firing", "resolved"])),
        "labels": maybe(string_maps),
        "startsAt": maybe(rfc3339() | st.just("0001-01-01T00:00:00Z")),
    },
    optional={
        "annotations": maybe(string_maps),
        "endsAt": maybe(rfc3339() | st.just("0001-01-01T00:00:00Z")),
        "generatorURL": maybe(texts),
        "fingerprint": maybe(texts),
        "values": maybe(st.dictionaries(texts, st.floats(allow_nan=False, allow_infinity=False), max_size=3)),
        "valueString": maybe(texts),
        "dashboardURL": maybe(texts),
        "x-unknown": any_json,
    },
)
COMMON_FIELDS = {
    "receiver": maybe(texts),
    "groupLabels": maybe(string_maps),
    "commonLabels": maybe(string_maps),
    "commonAnnotations": maybe(string_maps),
    "externalURL": maybe(texts),
    "truncatedAlerts": maybe(st.integers(-5, 2**40)),
    "x-unknown": any_json,
}


def payload(version: str, **grafana_fields):
    return st.fixed_dictionaries(
        {
            "alerts": maybe(st.lists(alerts, min_size=1, max_size=4)),
            "version": maybe(st.just(version)),
            "status": maybe(st.sampled_from(["firing", "resolved"])),
            "groupKey": maybe(st.text(min_size=1, max_size=12) | texts),
            **grafana_fields,
        },
        optional=COMMON_FIELDS,
    )


payloads = payload("4") | payload("1", orgId=maybe(st.integers()), title=maybe(texts), message=maybe(texts))


@pytest.fixture
def receiver():
    # Created once per test: every example of a test runs in that test's transaction.
    return AlertReceiverFactory(name="fuzzer")


def _check(response) -> None:
    assert response.status_code in (200, 400), response.content
    event(f"status {response.status_code}")
    answer = response.json()
    if response.status_code == 400:
        assert answer["error"] == "invalid" and answer["detail"]


@FUZZ
@given(body=payloads | any_json, url=st.sampled_from([ALERTMANAGER_URL, GRAFANA_URL]))
def test_no_payload_is_a_server_error(client, receiver, body, url):
    raw = json.dumps(body)  # ensure_ascii: lone surrogates and NUL arrive as \u escapes, as from a client
    response = client.post(
        url, data=raw, content_type="application/json", headers={"Authorization": f"Bearer {receiver.token}"}
    )
    _check(response)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_no_bytes_are_a_server_error(client, receiver, raw):
    response = client.post(
        ALERTMANAGER_URL,
        data=raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {receiver.token}"},
    )
    _check(response)
