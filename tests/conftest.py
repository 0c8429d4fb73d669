"""Shared fixtures. Tests run against the real PostgreSQL + pgvector (embedded unless DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

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


def pytest_collection_modifyitems(items):
    """Browser tests last: once Playwright's sync API has started (a session-scoped browser), it keeps an event
    loop running in the main thread, and every later ``async_to_sync`` there (Django's test client calling an
    async view, such as the chat's) would fail with "cannot use AsyncToSync in the same thread"."""
    items.sort(key=lambda item: item.path.name.endswith("_browser.py"))


@pytest.fixture
def empty_task_queue(transactional_db):
    """The task queue's tables emptied before and after: procrastinate's tables are not Django-managed, so
    a transactional test's flush leaves its jobs behind for the next test."""

    def empty():
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE procrastinate_jobs, procrastinate_periodic_defers, procrastinate_events, "
                "procrastinate_workers RESTART IDENTITY CASCADE"
            )

    empty()
    yield
    empty()
