"""API tokens expire after API_TOKEN_MAX_AGE_DAYS: an old token gets a 401 that says what to do, a new one works."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db

SESSIONS = "/api/ai-helper/sessions/"


def _get(client, key):
    return client.get(SESSIONS, headers={"Authorization": f"Token {key}"})


def test_an_expired_token_is_refused_and_a_replacement_works(client, user, settings):
    settings.API_TOKEN_MAX_AGE_DAYS = 90
    token = Token.objects.create(user=user)
    assert _get(client, token.key).status_code == 200

    Token.objects.filter(pk=token.pk).update(created=timezone.now() - dt.timedelta(days=91))
    response = _get(client, token.key)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Token'
    assert "older than 90 days" in response.json()["detail"]

    call_command("drf_create_token", "-r", user.username, stdout=None)
    fresh = Token.objects.get(user=user)
    assert fresh.key != token.key and _get(client, fresh.key).status_code == 200
    assert _get(client, token.key).status_code == 401  # the old key is gone for good


def test_zero_means_tokens_never_expire(client, user, settings):
    settings.API_TOKEN_MAX_AGE_DAYS = 0
    token = Token.objects.create(user=user)
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - dt.timedelta(days=3650))
    assert _get(client, token.key).status_code == 200
