"""Login throttling (django-axes), beyond tests/test_login.py: many usernames from one address.

The lockout key is (username, address): each targeted account locks for that address after
AXES_FAILURE_LIMIT failures, the locked response is 429 and carries no hint whether the account
exists, and the real user of an account coming from another address is not locked out by the
attacker. A spray of one or two passwords over many usernames from one address stays below the
per-pair limit: that residual risk is documented in docs/security.md (R-1), with the proxy-level
rate limit that covers it.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _login(client, username, password, address="10.0.0.66"):
    page = client.get("/accounts/login/", REMOTE_ADDR=address)
    token = page.cookies["csrftoken"].value
    return client.post("/accounts/login/", {"username": username, "password": password,
                                            "csrfmiddlewaretoken": token}, REMOTE_ADDR=address)


def test_many_usernames_from_one_address_each_lock(settings):
    settings.AXES_FAILURE_LIMIT = 3
    names = [f"victim{n}" for n in range(5)] + ["no-such-user-1", "no-such-user-2"]
    for name in names[:5]:
        UserFactory(username=name)
    attacker = Client(enforce_csrf_checks=True)
    for name in names:
        for attempt in range(3):
            response = _login(attacker, name, f"guess-{attempt}")
            assert response.status_code == (429 if attempt == 2 else 200)  # the limit-th failure locks
    locked = {name: _login(attacker, name, "correct-horse-battery") for name in names}
    assert {response.status_code for response in locked.values()} == {429}
    # Existing and unknown accounts are locked alike: the lockout does not reveal which names exist.
    assert locked["victim0"].content == locked["no-such-user-1"].content

    for name in names[:5]:
        response = _login(Client(enforce_csrf_checks=True), name, "correct-horse-battery", address="10.0.0.7")
        assert response.status_code == 302, name


def test_spray_below_the_per_pair_limit_is_not_locked(settings):
    """Documents R-1: two guesses per username from one address are never locked."""
    settings.AXES_FAILURE_LIMIT = 3
    attacker = Client(enforce_csrf_checks=True)
    for n in range(20):
        UserFactory(username=f"user{n}")
        assert _login(attacker, f"user{n}", "Summer2026!").status_code == 200
        assert _login(attacker, f"user{n}", "Winter2026!").status_code == 200
