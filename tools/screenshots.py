"""`make screenshots`: PNGs of every page at a laptop's and a phone's width into docs/screenshots/.

Run by pytest, not by `make test` (testpaths is tests/): it reuses pytest-django's live server on a
throw-away test database (the embedded PostgreSQL unless DATABASE_URL), fills it with the demo data
(`seed_demo` + embeddings, offline answers) and drives Debian's Chromium like the browser tests do, so
the pictures show what a fresh `make run` shows and the developer's own data is never touched.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from playwright.sync_api import expect

from alerts.demo import DEMO_ALERTS, demo_notification
from runbooks.demo import demo_accounts
from tests.e2e.conftest import browser  # noqa: F401 - the session fixture that launches Chromium

pytestmark = pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
VIEWPORTS = {"1366": {"width": 1366, "height": 900}, "390": {"width": 390, "height": 844}}
QUESTION = "Pods of the checkout service keep restarting with CrashLoopBackOff since the last deploy"
FOLLOW_UP = "how do I fix it quickly?"
SEARCH = "disk almost full on a node"


@pytest.fixture
def demo(transactional_db, settings):  # noqa: F811 - the pytest-django fixture
    from runbooks.services import runbooks_embed

    settings.LLM_PROVIDER = "offline"
    call_command("seed_demo", stdout=io.StringIO())
    runbooks_embed()
    return {account.username: account.password for account in demo_accounts()}


def _log_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/chat/")


def _shot(page, name: str, width: str, *, full_page: bool = True) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / f"{name}-{width}.png"), full_page=full_page, animations="disabled")


def _storm(client) -> None:
    """The demo alerts posted to the real webhook, recommended by a real worker run."""
    token = io.StringIO()
    call_command("create_alert_receiver", "alertmanager-prod", stdout=token)
    headers = {"Authorization": f"Bearer {token.getvalue().split()[-1]}"}
    now = dt.datetime.now(dt.UTC)
    for alertname, labels, summary, description, minutes in DEMO_ALERTS:
        body = demo_notification(alertname=alertname, labels=labels, summary=summary, description=description,
                                 starts_at=now - dt.timedelta(minutes=minutes))
        response = client.post("/api/alerts/alertmanager", body, content_type="application/json", headers=headers)
        assert response.status_code == 200, response.content
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    worker = threading.Thread(target=call_command, args=("worker", "--until-idle"), kwargs={"stdout": io.StringIO()})
    worker.start()
    worker.join(timeout=120)


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_screenshots(live_server, browser, demo, width, client):  # noqa: F811 - the fixture imported above
    base = live_server.url
    _storm(client)
    context = browser.new_context(viewport=VIEWPORTS[width], color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(30000)

    page.goto(f"{base}/accounts/login/")
    _shot(page, "login", width, full_page=False)
    _log_in(page, base, "alice", demo["alice"])

    page.get_by_label("Your message").fill(QUESTION)
    page.get_by_role("button", name="Send").click()
    page.locator("#chat-messages .msg-assistant:not(.msg-pending)").last.wait_for()
    expect(page.locator("#chat-title")).not_to_have_text("New chat")
    _shot(page, "chat", width, full_page=False)
    page.get_by_label("Your message").fill(FOLLOW_UP)
    page.get_by_role("button", name="Send").click()
    page.locator("#chat-messages .msg-assistant:not(.msg-pending)").nth(1).wait_for()
    _shot(page, "chat-follow-up", width, full_page=False)

    page.locator("#chat-messages a.runbook-link").first.click()
    page.wait_for_url("**/runbooks/**")
    _shot(page, "runbook", width)

    page.get_by_role("button", name="Start execution").click()
    page.wait_for_url("**/executions/**")
    for number in (1, 2):
        page.get_by_role("button", name=f"Mark step {number} done").click()
        page.get_by_role("button", name=f"Mark step {number} not done").wait_for()
    _shot(page, "execution", width)
    page.get_by_role("button", name="Finish: it worked").click()
    page.locator("#finish-dialog").wait_for()
    _shot(page, "execution-confirm", width, full_page=False)
    page.get_by_role("button", name="Go back").click()

    page.goto(f"{base}/runbooks/?q={SEARCH.replace(' ', '+')}")
    page.locator("#results .result").first.wait_for()
    _shot(page, "search", width)

    page.goto(f"{base}/alerts/")
    page.locator(".runbook-card").first.wait_for()
    _shot(page, "alerts", width)
    page.get_by_role("button", name="Ask about this alert").first.click()
    page.wait_for_url("**/chat/**")
    page.get_by_label("Your message").fill(FOLLOW_UP)
    page.get_by_role("button", name="Send").click()
    page.locator("#chat-messages .msg-assistant:not(.msg-pending)").nth(1).wait_for()
    _shot(page, "chat-alert", width, full_page=False)

    context.clear_cookies()
    _log_in(page, base, "admin", demo["admin"])
    page.goto(f"{base}/admin/analytics/dashboard/")
    _shot(page, "dashboard", width)
    context.close()

    if width == "1366":
        dark = browser.new_context(viewport=VIEWPORTS[width], color_scheme="dark")
        page = dark.new_page()
        _log_in(page, base, "bob", demo["bob"])
        page.get_by_label("Your message").fill(QUESTION)
        page.get_by_role("button", name="Send").click()
        page.locator("#chat-messages .msg-assistant:not(.msg-pending)").last.wait_for()
        _shot(page, "chat-dark", width, full_page=False)
        dark.close()
