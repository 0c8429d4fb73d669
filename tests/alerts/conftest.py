"""Alert tests build a new catalogue per test: a search re-used from an earlier test would name its runbooks."""

import pytest

from alerts.recommending import recent_searches_clear


@pytest.fixture(autouse=True)
def _fresh_searches():
    recent_searches_clear()
    yield
    recent_searches_clear()
