"""Who reads an error: a program (JSON body) or a person (a page). One rule for every error answer the
project writes itself: the outage 503, the body-size 413, the API 404."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import Resolver404, resolve

# Every JSON API of the project is mounted under this prefix (aihelper/urls.py).
API_PATH_PREFIX = "/api/"
JSON_CONTENT_TYPE = "application/json"
# Set on a view (api_errors.json_view) that answers JSON outside /api/: its errors are JSON for every client.
ANSWERS_JSON = "answers_json"


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PATH_PREFIX)


def wants_json_error(request: HttpRequest) -> bool:
    """APIs, and scripts that send JSON (the chat stream) or do not take HTML, read an error body."""
    return (is_api_request(request) or request.content_type == JSON_CONTENT_TYPE
            or not request.accepts("text/html") or _view_answers_json(request))


def _view_answers_json(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)  # set once Django has resolved the view (CSRF, 405)
    if match is None:  # before resolution: the body-size limit, an outage
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return False
    return getattr(match.func, ANSWERS_JSON, False)
