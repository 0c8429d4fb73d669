"""Browser tests: Playwright's sync API driving Debian's Chromium against pytest-django's live_server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct-horse-battery"

# Playwright's sync API keeps an event loop in this thread; the ORM calls made by the test itself
# (fixtures, assertions) are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is missing: apt-get update && apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            headless=True,
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, transactional_db):
    """Closed before the database is flushed, so no request of the page races the flush."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.dialogs = []

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.console_errors = []
    # HTTP errors are reported with their URL by the response handler below.
    page.on(
        "console",
        lambda msg: msg.type == "error" and "404" not in msg.text and page.console_errors.append(msg.text),
    )
    page.on(
        "response",
        lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
        and page.console_errors.append(f"{r.status} {r.url}"),
    )
    page.set_default_timeout(15000)
    yield page
    page.wait_for_load_state("networkidle")
    context.close()


@pytest.fixture
def login(live_server, page):
    def do_login(username: str):
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/chat/")
        return page

    return do_login
