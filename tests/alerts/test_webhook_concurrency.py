"""Concurrent posts of the same alerts (Alertmanager's HA replicas, retries) never make a second row or job."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection
from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from alerts.models import Alert, AlertGroup, AlertNotification
from tests.alerts.factories import AlertReceiverFactory
from tests.alerts.test_webhook import ALERTMANAGER_URL, TASK, fixture

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 8


def _post_at_once(posts: list[tuple[dict, str]]) -> list:
    """Each (body, token) posted from its own thread (its own connection), all released at the same moment."""
    barrier = threading.Barrier(len(posts))
    answers: list = [None] * len(posts)

    def worker(index: int) -> None:
        body, token = posts[index]
        try:
            client = Client()
            raw = json.dumps(body)
            barrier.wait(timeout=30)
            answers[index] = client.post(
                ALERTMANAGER_URL,
                data=raw,
                content_type="application/json",
                headers={"Authorization": f"Bearer {token}"},
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(posts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_the_same_payload_posted_at_once_is_one_row_and_one_job_per_alert(empty_task_queue):
    receiver = AlertReceiverFactory(name="ha-alertmanager")
    body = fixture("alertmanager_firing.json")

    answers = _post_at_once([(body, receiver.token)] * THREADS)

    assert [answer.status_code for answer in answers] == [200] * THREADS
    assert sum(answer.json()["new"] for answer in answers) == 3
    assert Alert.objects.count() == 3
    assert AlertGroup.objects.count() == 1
    assert AlertNotification.objects.count() == THREADS
    job_alerts = sorted(job.args["alert_id"] for job in ProcrastinateJob.objects.filter(task_name=TASK))
    assert job_alerts == sorted(Alert.objects.values_list("pk", flat=True))


def test_overlapping_groups_in_opposite_orders_neither_deadlock_nor_duplicate(empty_task_queue):
    first = AlertReceiverFactory(name="replica-a")
    second = AlertReceiverFactory(name="replica-b")
    body = fixture("alertmanager_firing.json")
    reversed_body = {**body, "alerts": list(reversed(body["alerts"]))}
    # Two groups (two receivers): no group row lock makes them take turns, they meet on the alerts' index.
    answers = _post_at_once([(body, first.token), (reversed_body, second.token)] * (THREADS // 2))

    assert [answer.status_code for answer in answers] == [200] * THREADS
    assert sum(answer.json()["new"] for answer in answers) == 3
    assert Alert.objects.count() == 3
    assert AlertGroup.objects.count() == 2
    assert ProcrastinateJob.objects.filter(task_name=TASK).count() == 3


def test_a_resolve_racing_a_repeat_leaves_one_consistent_row_per_alert(empty_task_queue):
    receiver = AlertReceiverFactory(name="racer")
    Client().post(
        ALERTMANAGER_URL,
        data=json.dumps(fixture("alertmanager_firing.json")),
        content_type="application/json",
        headers={"Authorization": f"Bearer {receiver.token}"},
    )
    posts = [
        (fixture("alertmanager_firing.json"), receiver.token),
        (fixture("alertmanager_resolved.json"), receiver.token),
    ]

    answers = _post_at_once(posts * (THREADS // 2))

    assert [answer.status_code for answer in answers] == [200] * THREADS
    # Alertmanager never sends one group's notifications at once; if a sender does, the last commit wins,
    # and every row is whole: resolved with its end, or firing without one.
    assert Alert.objects.count() == 3
    assert set(Alert.objects.values_list("status", flat=True)) <= {"firing", "resolved"}
    for status, ends_at in Alert.objects.values_list("status", "ends_at"):
        assert (status == "resolved") == (ends_at is not None)
    assert ProcrastinateJob.objects.filter(task_name=TASK).count() == 3
