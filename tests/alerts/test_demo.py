"""`manage.py seed_demo_alerts` (run by `make run`): the demo alerts are stored once, through the webhook's own
parser and store, and a real worker recommends the demo runbooks for them."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from procrastinate.contrib.django.models import ProcrastinateJob

from alerts.demo import DEMO_ALERTS, DEMO_RECEIVER
from alerts.models import Alert, AlertRecommendation, RecommendationState
from runbooks.services import runbooks_embed

pytestmark = pytest.mark.usefixtures("empty_task_queue")


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo_alerts", stdout=out)
    return out.getvalue()


def test_demo_alerts_are_stored_once_and_recommended_by_the_worker():
    call_command("seed_demo", stdout=io.StringIO())
    runbooks_embed()

    assert "2 stored" in _seed()
    assert "already stored" in _seed()
    assert Alert.objects.filter(receiver__name=DEMO_RECEIVER).count() == len(DEMO_ALERTS)
    assert ProcrastinateJob.objects.filter(task_name="alerts.recommend").count() == len(DEMO_ALERTS)

    call_command("worker", "--until-idle", stdout=io.StringIO())

    assert set(Alert.objects.values_list("recommendation_state", flat=True)) == {RecommendationState.DONE}
    first = dict(AlertRecommendation.objects.filter(rank=1).values_list("alert__alertname", "runbook__slug"))
    assert first == {"KubePodCrashLooping": "demo/pod-crashloop", "NodeFilesystemSpaceFillingUp": "demo/host-disk-full"}
