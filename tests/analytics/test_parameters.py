"""Every query parameter of the metrics API, the admin dashboard and each of its CSV exports, with hostile
values: never a 5xx; a 4xx that names the parameter (JSON fields for the API, the form's error for the page,
words for the export). Values are sent percent-encoded as a browser or script would send them."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.urls import reverse

from analytics.services.parameters import (
    DashboardParameters,
    InvalidParameters,
    analytics_parameters_parse,
    text_problem,
)
from tests.analytics.fixtures import build_world

pytestmark = pytest.mark.django_db

API = "/api/analytics/metrics"
PAGE = "/admin/analytics/dashboard/"
TABLES = [
    "kpis",
    "daily_trend",
    "by_source",
    "alert_outcomes",
    "funnel",
    "strategy_distribution",
    "time_to_decision",
    "click_rank_histogram",
    "carried_split",
    "top_runbooks",
    "experiments",
]
CSVS = [f"/admin/analytics/dashboard/{table}.csv" for table in TABLES]
TEN_KB = "a" * 10_000

# Invalid for every parameter: text that no date, choice or key may be.
EVERY = {
    "nul": "%00",
    "nul-inside": "2026-01-10%00",
    "lone-surrogate": "%ED%A0%80",
    "bad-utf8": "%FF%FE",
    "control": "a%07b",
    "10-kb": TEN_KB,
    "array": "%5B%5D",
    "object": "%7B%7D",
    "negative": "-1",
    "nan": "NaN",
    "sql": "%27%20OR%201%3D1--",
    "html": "%3Cscript%3E",
}
# Wrong types for a date or a choice (some are well-formed keys: an experiment may be called "true").
NOT_TEXT = {"number": "12345", "boolean": "true", "huge-number": "1e309"}
DATES = {
    **NOT_TEXT,
    "year-1": "0001-01-01",
    "year-9999": "9999-12-31",
    "year-9999-datetime": "9999-12-31T23:59:59-23:59",
    "year-1-datetime": "0001-01-01T00:00:00%2B23:59",
    "before-2000": "1999-12-31",
    "after-2099": "2100-01-01",
    "no-such-day": "2026-02-30",
    "hour-25": "2026-01-10T25:00:00",
    "offset-99h": "2026-01-10T00:00:00%2B99:00",
    "41-chars": "2026-01-10T00:00:00.000000%2B00:00" + "0" * 9,
}
CHOICES = {**NOT_TEXT, "unknown": "nonsense", "upper-case": "CHAT_PAGE", "101-chars": "a" * 101}
KEYS = {"upper-case": "Exp1", "space": "exp%201", "101-chars": "a" * 101, "leading-dash": "-exp"}


def _cases():
    for parameter in ("start", "end", "source", "strategy", "experiment", "variant"):
        values = dict(EVERY)
        values |= DATES if parameter in ("start", "end") else CHOICES if parameter in ("source", "strategy") else KEYS
        for label, value in values.items():
            yield pytest.param(parameter, value, id=f"{parameter}-{label}")
    # Combinations: a reversed range, and ranges over the 400-day maximum.
    yield pytest.param("start", "2026-01-12&end=2026-01-10", id="reversed-range")
    yield pytest.param("start", "2026-01-10T12:00:00Z&end=2026-01-10T12:00:00Z", id="empty-range")
    yield pytest.param("end", "2026-01-10&start=2020-01-01", id="range-over-400-days")
    yield pytest.param("start", "2000-01-01", id="only-start-400-days-before-today")
    yield pytest.param("source", "widget&source=%00", id="repeated-last-wins")


@pytest.fixture
def staff(client, staff_user):
    client.raise_request_exception = False
    client.force_login(staff_user)
    return client


def _errornote(content: bytes) -> str:
    match = re.search(r'<p class="errornote">(.*?)</p>', content.decode(), re.S)
    return html.unescape(match.group(1)) if match else ""


@pytest.mark.parametrize(("parameter", "value"), list(_cases()))
def test_hostile_parameter_is_a_4xx_naming_it_everywhere(staff, parameter, value):
    query = f"?{parameter}={value}"

    response = staff.get(API + query)
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert body["error"] == "invalid" and parameter in body["fields"], body
    assert parameter in body["detail"] and parameter in body["fields"][parameter][0]
    assert TEN_KB not in response.content.decode() and "\\u0000" not in response.content.decode()

    page = staff.get(PAGE + query)
    assert page.status_code == 400, (page.status_code, page.content[:300])
    note = _errornote(page.content)
    assert parameter in note, note
    assert TEN_KB not in page.content.decode() and "\x00" not in page.content.decode()

    for url in CSVS:
        export = staff.get(url + query)
        assert export.status_code == 400, (url, export.status_code, export.content[:300])
        assert export["Content-Type"].startswith("text/plain")
        assert parameter in export.content.decode()


def test_every_csv_export_is_in_the_hostile_matrix(staff):
    page = staff.get(PAGE)
    assert {"kpis", *(table.name for table in page.context["page"].tables)} == set(TABLES)


@pytest.mark.parametrize(
    "query",
    [
        "start=2000-01-01&end=2000-12-31",
        "start=2099-01-01&end=2099-12-31",
        "start=2099-12-30T00:00:00-23:59&end=2099-12-31T23:59:59-23:59",
        "start=2026-01-10&end=2026-01-10&source=widget&strategy=multiple_options&experiment=exp1&variant=treatment",
        "source=&strategy=&experiment=&variant=&start=&end=",
        "source=%20widget%20",
        "unknown=%00&other=" + TEN_KB,
    ],
)
def test_valid_edges_and_blank_parameters_are_answered(staff, user, query):
    build_world(user)
    assert staff.get(f"{API}?{query}").status_code == 200
    page = staff.get(f"{PAGE}?{query}")
    assert page.status_code == 200 and _errornote(page.content) == ""
    for url in CSVS:
        assert staff.get(f"{url}?{query}").status_code == 200, url


def test_filters_apply_after_checking(staff, user, settings):
    settings.TIME_ZONE = "UTC"
    build_world(user)
    body = staff.get(API, {"start": "2026-01-10", "end": "2026-01-10", "source": "widget"}).json()
    assert body["filters"] == {"source": "widget"} and body["audit_logs"] == 1


def test_an_invalid_page_shows_the_default_range_without_echoing_the_value(staff):
    page = staff.get(PAGE + "?start=9999-12-31&source=%00")
    assert page.status_code == 400
    note = _errornote(page.content)
    assert "start must be between 2000-01-01 and 2099-12-31." in note
    assert "source contains a control character" in note
    assert "Showing the last 30 days instead." in note
    assert page.context["filters"]["source"] == "" and page.context["querystring"] == ""


def test_the_api_names_every_invalid_parameter_at_once(staff):
    body = staff.get(API + "?start=0001-01-01&end=9999-12-31&source=%00&variant=" + TEN_KB).json()
    assert set(body["fields"]) == {"start", "end", "source", "variant"}
    assert body["fields"]["variant"] == ["variant is longer than 100 characters."]


def test_more_query_parameters_than_django_parses_is_a_400_in_words(staff, settings):
    query = "?" + "&".join(f"start={i}" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = staff.get(API + query)
    assert response.status_code == 400 and response.json()["error"] == "too_many_fields"
    for url in (PAGE, CSVS[0]):
        page = staff.get(url + query)
        assert page.status_code == 400 and b"more than 1000 fields" in page.content


def test_unknown_csv_table_is_404(staff):
    for table in ("passwords", "a" * 10_000, "kpis%00"):
        assert staff.get(f"/admin/analytics/dashboard/{table}.csv").status_code == 404


def test_schema_documents_the_choices(staff):
    schema = staff.get(reverse("schema"), {"format": "json"}).json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/analytics/metrics"]["get"]["parameters"]}
    assert {"chat_page", "widget", "direct"} <= set(parameters["source"]["schema"]["enum"])
    assert "no_solutions" in parameters["strategy"]["schema"]["enum"]


NOW = dt.datetime(2026, 1, 20, 12, tzinfo=dt.UTC)


def test_parse_gives_typed_parameters(settings):
    settings.TIME_ZONE = "UTC"
    parameters = analytics_parameters_parse(query={"start": "2026-01-10", "source": " widget "}, now=NOW)
    assert parameters == DashboardParameters(
        start=dt.datetime(2026, 1, 10, tzinfo=dt.UTC),
        end=dt.datetime(2026, 1, 21, tzinfo=dt.UTC),
        source="widget",
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("\x00", "contains a control character"),
        ("a\ud800", "is not valid UTF-8 text"),
        ("\ufffd", "is not valid UTF-8 text"),
        ("x" * 41, "is longer than 40 characters"),
        ("2026-01-10", None),
        ("café", None),
    ],
)
def test_text_problem(value, problem):
    found = text_problem("start", value, max_chars=40)
    assert (found is None) if problem is None else (problem in found and found.startswith("start "))


def test_parse_collects_every_error():
    with pytest.raises(InvalidParameters) as raised:
        analytics_parameters_parse(query={"end": "x", "strategy": "best", "experiment": "A B"}, now=NOW)
    assert set(raised.value.errors) == {"end", "strategy", "experiment"}
    assert "strategy 'best' is not one of: no_solutions" in raised.value.message
