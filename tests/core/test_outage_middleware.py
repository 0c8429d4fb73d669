"""The outage answer outside the view: nothing loads the user late, a failed session save is a 503 too.

The whole-site check with a stopped database is tests/test_faults_database.py; these pin the pieces.
"""

import logging

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.functional import SimpleLazyObject

from aihelper.core.middleware import DatabaseUnavailableMiddleware, RequestIdMiddleware, SessionMiddleware


def _database_down():
    raise OperationalError("connection refused")


def test_the_request_log_does_not_load_a_user_the_request_never_needed(caplog):
    request = RequestFactory().get("/healthz")
    request.user = SimpleLazyObject(_database_down)
    with caplog.at_level(logging.INFO, logger="aihelper.request"):
        response = RequestIdMiddleware(lambda request: HttpResponse("ok"))(request)
    assert response.status_code == 200
    assert [record.user_id for record in caplog.records if record.getMessage() == "request"] == [None]


def test_the_request_log_names_a_user_the_request_loaded(caplog):
    class User:
        pk = 42

    request = RequestFactory().get("/chat/")
    request.user = SimpleLazyObject(User)

    def view(request):
        assert request.user.pk == 42
        return HttpResponse("ok")

    with caplog.at_level(logging.INFO, logger="aihelper.request"):
        RequestIdMiddleware(view)(request)
    assert [record.user_id for record in caplog.records if record.getMessage() == "request"] == [42]


@pytest.mark.parametrize(
    ("path", "headers", "json_expected"),
    [
        ("/chat/", {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}, False),
        ("/runbooks/", {}, False),
        ("/api/ai-helper/sessions/", {"HTTP_ACCEPT": "text/html"}, True),
        ("/chat/stream", {"CONTENT_TYPE": "application/json", "HTTP_ACCEPT": "text/event-stream"}, True),
        ("/chat/sessions", {"HTTP_ACCEPT": "application/json"}, True),
    ],
)
def test_the_outage_answer_is_json_for_scripts_and_a_page_for_people(path, headers, json_expected):
    request = RequestFactory().post(path, **headers)
    response = DatabaseUnavailableMiddleware(None).process_exception(request, OperationalError("down"))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    if json_expected:
        assert response["Content-Type"] == "application/json"
        assert b'"database_unavailable"' in response.content
    else:
        assert response["Content-Type"].startswith("text/html")
        assert b"Temporarily unavailable" in response.content


def test_other_database_errors_are_not_an_outage():
    request = RequestFactory().get("/chat/")
    assert DatabaseUnavailableMiddleware(None).process_exception(request, ValueError("bug")) is None


def test_a_session_save_that_fails_in_an_outage_is_the_documented_503(monkeypatch):
    request = RequestFactory().get("/chat/", HTTP_ACCEPT="text/html")

    def view(request):
        request.session["theme"] = "dark"  # a new session: no database read, only the save after the view
        return HttpResponse("ok")

    monkeypatch.setattr(SessionStore, "save", lambda self, must_create=False: _database_down())
    response = SessionMiddleware(view)(request)
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"Temporarily unavailable" in response.content
    assert "sessionid" not in response.cookies
