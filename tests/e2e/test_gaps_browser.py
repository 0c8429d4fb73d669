"""Admin → Analytics → Gaps in Chromium at 1366 and 390 px: the planted groups (tests/analytics/gaps_fixtures.py),
no sideways scroll, accessible, and "Draft a runbook" saving a draft that the page then shows on its group."""

from __future__ import annotations

from pathlib import Path

from runbooks.models import Runbook, RunbookOrigin, RunbookStatus
from tests.analytics.gaps_fixtures import plant
from tests.e2e.test_pages_browser import _accessible, _fits, _log_in, axe, sized_page  # noqa: F401 (fixtures)
from tests.factories import UserFactory

SHOTS = Path("/tmp/screenshots/gaps")
RANGE = "?start=2026-01-05&end=2026-01-18"


def test_the_gaps_page_reads_fits_and_drafts_a_runbook(live_server, sized_page, axe, settings):  # noqa: F811
    settings.LLM_PROVIDER, settings.ANTHROPIC_API_KEY = "offline", ""
    page, base = sized_page, live_server.url
    width = page.viewport_size["width"]
    plant(UserFactory(username="alice"))
    UserFactory(username="root", is_staff=True, is_superuser=True)
    _log_in(page, base, "root")

    page.goto(f"{base}/admin/")
    page.get_by_role("link", name="Gaps: what to write next, and runbook health").click()
    page.get_by_role("heading", name="Gaps: largest and growing first").wait_for()
    assert "No group of questions went wrong" in page.inner_text("#analytics-gaps")  # the last 30 days: none

    page.goto(f"{base}/admin/analytics/gaps/{RANGE}")
    groups = page.locator(".gaps-groups article")
    assert groups.count() == 3
    first = groups.first
    assert first.get_by_text("Not covered").is_visible()
    assert "kafka" in first.inner_text()
    assert page.locator(".gaps-card-covered").count() == 2
    assert page.get_by_role("img", name="Questions per").count() == 3
    _fits(page, f"gaps {width}")
    _accessible(page, axe, f"gaps {width}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"gaps-{width}.png"), full_page=True)

    first.get_by_role("button", name="Draft a runbook").click()
    page.get_by_role("status").filter(has_text="Draft runbook saved for review").wait_for()
    draft = Runbook.objects.get(origin=RunbookOrigin.GAP_REPORT)
    assert draft.status == RunbookStatus.DRAFT
    link = page.locator(".gaps-groups article").first.get_by_role("link", name=draft.name)
    assert link.is_visible() and "Not covered" in page.locator(".gaps-groups article").first.inner_text()
    _fits(page, f"gaps after the draft {width}")
    page.screenshot(path=str(SHOTS / f"gaps-drafted-{width}.png"), full_page=True)

    # The dashboard beside it: the presentations split into newly retrieved and carried over.
    page.goto(f"{base}/admin/analytics/dashboard/{RANGE}")
    split = page.locator("#table-carried_split")
    # The planted answers presented 4 runbooks, all newly retrieved, none clicked.
    cells = split.locator("tr", has_text="Newly retrieved").inner_text().split("\t")
    assert [cell.strip() for cell in cells] == ["Newly retrieved", "4", "0", "0%"], cells
    _fits(page, f"dashboard {width}")
    split.screenshot(path=str(SHOTS / f"dashboard-carried-{width}.png"))
    assert page.errors == [], page.errors
