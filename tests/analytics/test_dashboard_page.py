"""The dashboard page for people: labels in words, percentages, durations, sparse days collapsed."""

import re

import pytest
from django.urls import reverse

from analytics.services.page import duration, interval, percent
from tests.analytics.fixtures import build_world

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"),
        (0, "0 s"),
        (9.54, "9.5 s"),
        (10, "10 s"),
        (60, "1 min"),
        (115.3885, "1 min 55 s"),
        (3600, "1 h"),
        (3725, "1 h 2 min"),
    ],
)
def test_durations_read_in_seconds_minutes_and_hours(seconds, text):
    assert duration(seconds) == text


def test_rates_read_as_percentages():
    assert [percent(v) for v in (None, 0.0, 0.375, 1.0, 2 / 3)] == ["–", "0%", "37.5%", "100%", "66.7%"]
    assert interval((0.2011, 0.55)) == "20.1–55%"


@pytest.fixture
def page(client, staff_user, user, settings):
    settings.TIME_ZONE = "UTC"
    build_world(user)
    client.force_login(staff_user)
    # Five days; the fixtures' answers fall on 10 and 11 January only.
    return client.get(reverse("admin:analytics_dashboard"), {"start": "2026-01-08", "end": "2026-01-12"})


def _text(html: str) -> str:
    """What a reader sees: no tags, no scripts (the charts' JSON keeps machine names)."""
    return " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", " ", html, flags=re.S)).split())


def test_key_figures_are_labelled_in_words_with_formatted_values(page):
    html = page.content.decode()
    text = _text(html)
    figures = {figure.label: figure.value for figure in page.context["page"].figures}
    assert figures["Time to decision (median)"].endswith(" s")
    assert figures["Click-through"].endswith("%")
    for label, value in figures.items():
        assert f"{label} {value}" in text
    assert "time_to_decision_median_seconds" not in text and "click_through_rate" not in text
    assert not re.search(r"\b0\.\d{4}\b", text), "no raw ratios like 0.3750 on the page"


def test_the_daily_table_shows_days_with_answers_and_collapses_the_rest(page):
    daily = page.context["page"].tables[0]
    assert daily.name == "daily_trend"
    assert [row[0] for row in daily.rows] == ["Sat 10 Jan 2026", "Sun 11 Jan 2026"]
    assert len(daily.more_rows) == 5 and daily.more_label == "Show all 5 days"
    html = page.content.decode()
    assert "<details" in html and "Show all 5 days</summary>" in html
    assert html.index("Thu 08 Jan 2026") > html.index("Show all 5 days")


def test_a_range_without_data_says_so_instead_of_a_table_of_zeros(client, staff_user):
    client.force_login(staff_user)
    page = client.get(reverse("admin:analytics_dashboard"), {"start": "2025-01-01", "end": "2025-01-30"})
    html = page.content.decode()
    assert "No answers on any of the 30 days." in html
    assert "Show all 30 days" in html
    assert "No experiment ran in this range." in html


def test_tables_scroll_inside_their_box_and_are_keyboard_reachable(page):
    html = page.content.decode()
    assert html.count('class="analytics-scroll" role="region" tabindex="0"') >= 6
    assert "analytics-grid-wide" in html  # the experiments table wraps its long cells
