import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _login(client, username, password):
    page = client.get("/accounts/login/")
    token = page.cookies["csrftoken"].value
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password, "csrfmiddlewaretoken": token},
    )


def test_login_and_logout_through_the_pages(user):
    client = Client(enforce_csrf_checks=True)
    response = _login(client, "alice", "correct-horse-battery")
    assert response.status_code == 302 and response["Location"] == "/chat/"
    token = client.cookies["csrftoken"].value
    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert client.get("/runbooks/").status_code == 302  # logged out: redirected to login


def test_wrong_password_shows_an_error(user):
    response = _login(Client(enforce_csrf_checks=True), "alice", "nope")
    assert response.status_code == 200
    assert b"didn't match" in response.content


def test_repeated_failures_lock_the_account_for_that_address(user, other_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client(enforce_csrf_checks=True)
    for _ in range(3):
        _login(client, "alice", "wrong")
    locked = _login(client, "alice", "correct-horse-battery")
    assert locked.status_code == 429
    # Another account is not affected.
    assert _login(Client(enforce_csrf_checks=True), "mallory", "correct-horse-battery").status_code == 302


def test_login_requires_csrf(user):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct-horse-battery"})
    assert response.status_code == 403
