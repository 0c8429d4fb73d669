"""Shared fixtures. Tests run against the real PostgreSQL + pgvector (embedded unless DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def shared_dir() -> Path:
    if not (SHARED_DIR / "data").is_dir():
        pytest.skip(f"../shared/data is absent ({SHARED_DIR}); the public corpus is not in this checkout")
    return SHARED_DIR


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    from tests.factories import UserFactory

    return UserFactory(username="mallory")


@pytest.fixture
def staff_user(db):
    from tests.factories import UserFactory

    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client
