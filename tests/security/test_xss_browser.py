"""Stored XSS is inert in a real browser (Chromium through Playwright), beyond tests/e2e (runbook body and
LLM answer): the engineer's own question echoed in the history, runbook title/description/tags/steps on
the search page, the detail page, the chat cards, an execution page, and the admin (runbooks, chat
sessions and messages, audit logs).

Every payload both calls alert() and sets window.__xss: the test fails if any dialog fires, the flag is
set, the browser refused an inline script or handler (it reached the DOM as markup), or the DOM holds an
inline script, an on* attribute, an iframe/object/embed or a javascript: URL.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.e2e.conftest import CHROMIUM, login, page  # noqa: F401 - the e2e fixtures, reused
from tests.factories import UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)]

XSS = (
    "<script>window.__xss='script';alert('script')</script>"
    "<img src=x onerror=\"window.__xss='img';alert('img')\">"
    "<svg onload=\"window.__xss='svg';alert('svg')\"></svg>"
    "\"><b onmouseover=\"alert('attr')\">x</b>' autofocus onfocus='window.__xss=1' "
    "[md link](javascript:window.__xss='md') <a href=\"javascript:alert('a')\">a</a>"
)

# The title column is 200 characters.
NAME_XSS = "DiskCleanup <img src=x onerror=\"window.__xss='n';alert('n')\"><script>alert('t')</script>"

DOM_CHECK = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) if (attr.name.startsWith('on')) bad.push(el.tagName + '[' + attr.name + ']');
    if (el.tagName === 'SCRIPT' && !el.src) bad.push('inline script: ' + el.textContent.slice(0, 60));
    if (['IFRAME', 'OBJECT', 'EMBED'].includes(el.tagName)) bad.push(el.tagName);
  }
  for (const el of document.querySelectorAll('[href],[src],[action],[formaction]')) {
    for (const name of ['href', 'src', 'action', 'formaction']) {
      const value = (el.getAttribute(name) || '').replace(/\\s/g, '').toLowerCase();
      if (value.startsWith('javascript:') || value.startsWith('data:text/html')) bad.push(name + '=' + value);
    }
  }
  if (window.__xss !== undefined) bad.push('window.__xss=' + window.__xss);
  return bad;
}"""


@pytest.fixture(scope="module")
def browser(request):
    """The e2e suite's Chromium when it is already running in this session (Playwright's sync API allows one
    per thread), else one of our own for this module."""
    for fixturedef in request._fixturemanager._arg2fixturedefs.get("browser", ()):
        cached = getattr(fixturedef, "cached_result", None)
        if fixturedef.baseid.startswith("tests/e2e") and cached and cached[0] is not None:
            yield cached[0]
            return
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is missing: apt-get update && apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            headless=True,
        )
        yield chromium
        chromium.close()


@pytest.fixture
def evil(transactional_db, settings):
    from runbooks.services import runbooks_embed

    settings.AIHELPER_CONFIDENCE_THRESHOLD = 0.0
    settings.LLM_PROVIDER = "offline"
    runbook = RunbookFactory(
        slug="sec/evil-disk", name=NAME_XSS,
        description="Disk full cleanup on a node. " + XSS,
        tags=["disk", XSS, "</li><script>window.__xss='tag'</script>"],
        body_markdown="# Clean\n" + XSS,
        steps=[{"title": "Clean " + XSS, "detail": XSS, "command": "echo `id` " + XSS}],
    )
    runbooks_embed()
    return runbook


def _assert_inert(tab, where: str) -> None:
    tab.wait_for_timeout(300)
    assert tab.dialogs == [], where
    refused = [text for text in tab.console_errors if "Refused to execute" in text or "inline" in text.lower()]
    assert refused == [], (where, refused)
    assert tab.evaluate(DOM_CHECK) == [], where


def _hover_everything(tab) -> None:
    for locator in tab.locator("main b, #main b, .chat-messages b").all()[:10]:
        locator.hover()


def test_runbook_fields_on_search_detail_and_execution_pages(live_server, login, evil):  # noqa: F811 - the imported fixtures
    UserFactory(username="erin")
    tab = login("erin")
    tab.goto(f"{live_server.url}/runbooks/?q=disk+full+cleanup")
    assert "DiskCleanup" in tab.inner_text("#results")  # the DOM has <wbr> between its words (ui.js)
    assert "<script>" in tab.inner_text("body")  # shown as text, not run
    _assert_inert(tab, "search page")
    tab.fill("#q", "disk full cleanup node")  # the live (htmx) search swaps in the results partial
    tab.wait_for_timeout(800)
    _assert_inert(tab, "live search")

    tab.goto(f"{live_server.url}/runbooks/{evil.pk}/")
    _hover_everything(tab)
    _assert_inert(tab, "detail page")
    start = tab.get_by_role("button", name="Start")
    if start.count():
        start.first.click()
        tab.wait_for_load_state()
        _assert_inert(tab, "execution page")
    # Control: the DOM check does see a handler when one is there.
    tab.evaluate("() => { const b = document.createElement('b'); b.setAttribute('onclick', 'x'); "
                  "document.body.appendChild(b); }")
    assert tab.evaluate(DOM_CHECK) == ["B[onclick]"]


def test_own_question_and_cards_in_chat_and_history(live_server, login, evil):  # noqa: F811 - the imported fixtures
    UserFactory(username="frank")
    tab = login("frank")
    question = "disk full cleanup " + XSS
    tab.get_by_label("Your message").fill(question)
    tab.get_by_label("Your message").press("Enter")
    tab.locator("#chat-messages .msg-assistant:not(.msg-pending)").last.wait_for()
    messages = tab.locator("#chat-messages").inner_text()
    assert "window.__xss='script'" in messages  # the question is echoed as text
    assert tab.locator("#chat-messages .runbook-card").count() >= 1
    _hover_everything(tab)
    _assert_inert(tab, "chat answer")
    tab.reload()  # the stored conversation, rendered by the server
    tab.locator("#chat-messages .msg-assistant").last.wait_for()
    _hover_everything(tab)
    _assert_inert(tab, "chat history")


def test_alert_text_on_the_alerts_page(live_server, login, evil):  # noqa: F811 - the imported fixtures
    """What a webhook sender wrote (labels, annotations, group labels, URLs) next to the evil runbook's card."""
    from tests.alerts.page_rows import page_alert, page_group, rank_runbooks

    group = page_group(labels={"team": XSS}, external_url="javascript:window.__xss='ext'")
    alert = page_alert(
        group=group, alertname="Disk<script>window.__xss='name'</script>", labels={"pod": XSS},
        annotations={"summary": XSS, "description": "**bold** " + XSS}, generator_url="javascript:alert('gen')",
    )
    rank_runbooks(alert, (evil, 0.95))
    UserFactory(username="gina")
    tab = login("gina")
    tab.goto(f"{live_server.url}/alerts/")
    assert "window.__xss='script'" in tab.inner_text("main")  # shown as text
    assert tab.locator(".runbook-card").count() >= 1
    for details in tab.locator("details").all():
        details.click()
    _hover_everything(tab)
    _assert_inert(tab, "alerts page")


def test_admin_pages(live_server, browser, evil):  # noqa: F811 - the imported fixtures
    from aihelper.chat.models import ChatSession
    from aihelper.chat.services.orchestrator import chat_answer
    from audit.models import AuditLog

    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    chat_answer(user=root, message="disk full cleanup " + XSS)
    session, log = ChatSession.objects.get(), AuditLog.objects.get()
    context = browser.new_context()
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    tab.console_errors = []
    tab.on("console", lambda msg: msg.type == "error" and tab.console_errors.append(msg.text))
    try:
        tab.goto(f"{live_server.url}/admin/login/")
        tab.fill("#id_username", "root")
        tab.fill("#id_password", "correct-horse-battery")
        tab.click("input[type=submit]")
        tab.wait_for_url(f"{live_server.url}/admin/")
        for path in (
            "/admin/runbooks/runbook/", f"/admin/runbooks/runbook/{evil.pk}/change/",
            "/admin/runbooks/runbook/?q=DiskCleanup",
            "/admin/aihelper/chatsession/", f"/admin/aihelper/chatsession/{session.pk}/change/",
            "/admin/aihelper/chatmessage/", "/admin/audit/auditlog/", f"/admin/audit/auditlog/{log.pk}/change/",
        ):
            response = tab.goto(f"{live_server.url}{path}")
            assert response.status == 200, path
            _assert_inert(tab, path)
    finally:
        context.close()
