"""API tokens that expire (docs/security.md, "API tokens"): DRF's token authentication, refusing a token older
than API_TOKEN_MAX_AGE_DAYS (0: never). A new token replaces the old one:
``manage.py drf_create_token -r USERNAME`` (or the admin's Tokens page)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        days = settings.API_TOKEN_MAX_AGE_DAYS
        if days and token.created < timezone.now() - dt.timedelta(days=days):
            raise exceptions.AuthenticationFailed(
                f"This API token is older than {days} days and has expired: ask an administrator for a new one "
                "(manage.py drf_create_token -r <username>)."
            )
        return user, token
