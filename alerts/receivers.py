"""Receivers and their bearer tokens: create (the token is returned once), authenticate, revoke.

A token is ``secrets.token_urlsafe(32)`` (43 characters, 256 random bits). Only its SHA-256 (hex) is stored,
with its first characters so that an operator can tell tokens apart; a request's token is hashed and looked
up by that unique column. A plain hash is enough for 256 random bits: nothing to brute-force, no salt needed
(docs/alerts.md, "Receivers and tokens").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.models import AlertReceiver

TOKEN_BYTES = 32
TOKEN_PREFIX_CHARS = 8
# last_used_at is written at most this often per receiver: a burst of posts costs one UPDATE, not one each.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
RECEIVER_NAME_MAX_CHARS = AlertReceiver._meta.get_field("name").max_length
BEARER_SCHEME = "bearer"


class ReceiverNameTaken(Exception):
    pass


class ReceiverNotFound(Exception):
    pass


@dataclass(frozen=True)
class NewReceiver:
    receiver: AlertReceiver
    token: str  # shown once; never stored


@dataclass(frozen=True)
class Authentication:
    """A request's token checked: the receiver when it may post, else why not (for the 401's words)."""

    receiver: AlertReceiver | None
    refusal: str = ""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def alert_receiver_create(*, name: str, created_by=None) -> NewReceiver:
    name = name.strip()
    if not name or len(name) > RECEIVER_NAME_MAX_CHARS:
        raise ValueError(f"A receiver name must be 1 to {RECEIVER_NAME_MAX_CHARS} characters long.")
    if AlertReceiver.objects.filter(name=name).exists():
        raise ReceiverNameTaken(f"A receiver named {name!r} already exists.")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    receiver = AlertReceiver(
        name=name, token_hash=token_hash(token), token_prefix=token[:TOKEN_PREFIX_CHARS], created_by=created_by
    )
    try:
        with transaction.atomic():
            receiver.save(force_insert=True)
    except IntegrityError:
        raise ReceiverNameTaken(f"A receiver named {name!r} already exists.") from None
    return NewReceiver(receiver=receiver, token=token)


def alert_receiver_revoke(*, name: str) -> AlertReceiver:
    """Revoke the receiver named ``name`` (again is a no-op: the first revocation time stays)."""
    AlertReceiver.objects.filter(name=name, revoked_at__isnull=True).update(revoked_at=timezone.now())
    try:
        return AlertReceiver.objects.get(name=name)
    except AlertReceiver.DoesNotExist:
        raise ReceiverNotFound(f"No receiver is named {name!r}.") from None


def alert_receivers_revoke(*, receiver_ids: list[int]) -> int:
    """Revoke these receivers; how many were not revoked yet."""
    return AlertReceiver.objects.filter(pk__in=receiver_ids, revoked_at__isnull=True).update(revoked_at=timezone.now())


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive, RFC 6750), or None."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != BEARER_SCHEME or not token or " " in token:
        return None
    return token


def alert_receiver_authenticate(*, authorization: str) -> Authentication:
    """Who an ``Authorization`` header says is posting. Records ``last_used_at`` (at most once a minute)."""
    token = bearer_token(authorization)
    if token is None:
        return Authentication(None, "Send the receiver's token as 'Authorization: Bearer <token>'.")
    receiver = AlertReceiver.objects.filter(token_hash=token_hash(token)).first()
    if receiver is None:
        return Authentication(None, "The bearer token does not belong to any alert receiver.")
    if receiver.revoked_at is not None:
        return Authentication(None, f"The token of receiver {receiver.name!r} was revoked; create a new receiver.")
    now = timezone.now()
    if receiver.last_used_at is None or now - receiver.last_used_at >= LAST_USED_RESOLUTION:
        AlertReceiver.objects.filter(pk=receiver.pk).update(last_used_at=now)
        receiver.last_used_at = now
    return Authentication(receiver)
