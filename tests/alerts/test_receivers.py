"""Receivers and tokens: created (shown once), stored as a hash, checked, revoked; the command and the admin."""

from __future__ import annotations

import datetime as dt
import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertReceiver
from alerts.receivers import (
    ReceiverNameTaken,
    ReceiverNotFound,
    alert_receiver_authenticate,
    alert_receiver_create,
    alert_receiver_revoke,
    bearer_token,
)
from tests.alerts.factories import AlertReceiverFactory

pytestmark = pytest.mark.django_db


def test_a_new_receiver_stores_only_the_hash_and_prefix_of_its_token():
    created = alert_receiver_create(name="  prod  ")
    receiver = AlertReceiver.objects.get(pk=created.receiver.pk)

    assert receiver.name == "prod"
    assert len(created.token) == 43  # token_urlsafe(32)
    assert receiver.token_hash == hashlib.sha256(created.token.encode()).hexdigest()
    assert receiver.token_prefix == created.token[:8]
    assert created.token not in {receiver.token_hash, receiver.name}
    assert alert_receiver_create(name="other").token != created.token


def test_names_are_unique_and_not_empty():
    alert_receiver_create(name="prod")
    with pytest.raises(ReceiverNameTaken):
        alert_receiver_create(name="prod")
    with pytest.raises(ValueError, match="1 to 100"):
        alert_receiver_create(name="   ")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER  abc ", "abc"),
        ("Bearer", None),
        ("Basic abc", None),
        ("", None),
        ("Bearer a b", None),
        ("Token abc", None),
    ],
)
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def test_authenticate_finds_the_receiver_and_records_last_use_once_a_minute():
    receiver = AlertReceiverFactory()
    found = alert_receiver_authenticate(authorization=f"Bearer {receiver.token}")
    assert found.receiver == receiver
    first_use = AlertReceiver.objects.get(pk=receiver.pk).last_used_at
    assert first_use is not None

    alert_receiver_authenticate(authorization=f"Bearer {receiver.token}")
    assert AlertReceiver.objects.get(pk=receiver.pk).last_used_at == first_use  # within the minute: no write

    AlertReceiver.objects.filter(pk=receiver.pk).update(last_used_at=timezone.now() - dt.timedelta(minutes=5))
    alert_receiver_authenticate(authorization=f"Bearer {receiver.token}")
    assert AlertReceiver.objects.get(pk=receiver.pk).last_used_at > first_use


def test_wrong_and_revoked_tokens_are_refused_with_a_reason():
    receiver = AlertReceiverFactory(name="prod")
    assert alert_receiver_authenticate(authorization="Bearer nope").refusal.startswith("The bearer token does not")
    assert "Authorization: Bearer" in alert_receiver_authenticate(authorization="").refusal

    revoked = alert_receiver_revoke(name="prod")
    assert revoked.revoked_at is not None
    refused = alert_receiver_authenticate(authorization=f"Bearer {receiver.token}")
    assert refused.receiver is None and "revoked" in refused.refusal
    assert alert_receiver_revoke(name="prod").revoked_at == revoked.revoked_at  # again: no change
    with pytest.raises(ReceiverNotFound):
        alert_receiver_revoke(name="missing")


def test_the_command_prints_the_token_once_as_its_last_line():
    out, err = StringIO(), StringIO()
    call_command("create_alert_receiver", "prod-alertmanager", stdout=out, stderr=err)

    token = out.getvalue().strip().splitlines()[-1]
    receiver = AlertReceiver.objects.get(name="prod-alertmanager")
    assert receiver.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert "shown only this once" in err.getvalue()
    assert alert_receiver_authenticate(authorization=f"Bearer {token}").receiver == receiver


def test_the_command_refuses_a_duplicate_name():
    call_command("create_alert_receiver", "prod", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_alert_receiver", "prod", stdout=StringIO(), stderr=StringIO())
    assert AlertReceiver.objects.count() == 1


def test_the_revoke_command():
    AlertReceiverFactory(name="prod")
    out = StringIO()
    call_command("revoke_alert_receiver", "prod", stdout=out)
    assert "revoked" in out.getvalue()
    assert AlertReceiver.objects.get(name="prod").revoked_at is not None
    with pytest.raises(CommandError, match="No receiver"):
        call_command("revoke_alert_receiver", "missing")


def test_the_admin_creates_a_receiver_and_shows_its_token_once(client, staff_user):
    client.force_login(staff_user)
    response = client.post(reverse("admin:alerts_alertreceiver_add"), {"name": "grafana-prod"}, follow=True)

    assert response.status_code == 200
    receiver = AlertReceiver.objects.get(name="grafana-prod")
    assert receiver.created_by == staff_user
    shown = [str(message) for message in response.context["messages"]]
    tokens = [part.split("</code>")[0] for message in shown for part in message.split("<code>")[1:]]
    assert len(tokens) == 1
    assert hashlib.sha256(tokens[0].encode()).hexdigest() == receiver.token_hash
    again = client.get(reverse("admin:alerts_alertreceiver_change", args=[receiver.pk]))
    assert tokens[0] not in again.content.decode()
    assert receiver.token_prefix in again.content.decode()


def test_the_admin_refuses_a_duplicate_name(client, staff_user):
    AlertReceiverFactory(name="prod")
    client.force_login(staff_user)
    response = client.post(reverse("admin:alerts_alertreceiver_add"), {"name": "prod"})
    assert response.status_code == 200  # the form again, with the error
    assert AlertReceiver.objects.count() == 1


def test_the_admin_revokes_and_never_deletes(client, staff_user):
    receiver = AlertReceiverFactory(name="prod")
    client.force_login(staff_user)
    changelist = reverse("admin:alerts_alertreceiver_changelist")
    response = client.post(changelist, {"action": "revoke_selected", "_selected_action": [receiver.pk]}, follow=True)

    assert response.status_code == 200
    assert AlertReceiver.objects.get(pk=receiver.pk).revoked_at is not None
    assert client.get(reverse("admin:alerts_alertreceiver_delete", args=[receiver.pk])).status_code == 403


@pytest.mark.parametrize("model", ["alertreceiver", "alertgroup", "alertnotification", "alert"])
def test_the_alert_changelists_answer(client, staff_user, model):
    client.force_login(staff_user)
    assert client.get(reverse(f"admin:alerts_{model}_changelist")).status_code == 200
