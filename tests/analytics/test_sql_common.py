"""The shared read path and filter of analytics/sql/common.py."""

from __future__ import annotations

import datetime as dt

import pytest
from psycopg import sql

from analytics.sql.common import ATTRIBUTION_WINDOW, metric_filter, ratio, run_read
from tests.analytics.fixtures import END, START

pytestmark = pytest.mark.django_db


def test_reads_run_with_the_raised_work_mem():
    assert run_read(sql.SQL("SELECT current_setting('work_mem')"), {}) == [("64MB",)]


def test_the_facts_watermark_splits_the_range_inside_its_bounds():
    settled = START + dt.timedelta(hours=6)
    params = metric_filter(start=START, end=END, facts_before=settled).params()
    assert (params["facts_end"], params["live_start"], params["events_end"]) == (
        settled,
        settled,
        END + ATTRIBUTION_WINDOW,
    )
    # A watermark past the end reads every log from the facts; one before the start reads none.
    assert metric_filter(start=START, end=END, facts_before=END + dt.timedelta(days=3)).params()["facts_end"] == END
    early = metric_filter(start=START, end=END, facts_before=START - dt.timedelta(days=1))
    assert not early.uses_facts and early.params()["live_start"] == START


def test_empty_filters_are_no_filter_and_ratios_of_nothing_are_null():
    assert metric_filter(start=START, end=END, source="", strategy=None).source is None
    assert (ratio(1, 4), ratio(0, 0), ratio(3, None)) == (0.25, None, None)
