import pytest
from django.conf import settings

from aihelper.chat.models import ChatSession
from audit.models import AuditLog
from tests.factories import UserFactory
from tests.fake_anthropic import FakeAnthropic
from tests.runbooks.factories import RunbookFactory

# available_apps makes the flush between tests TRUNCATE ... CASCADE, which the partitioned event
# table (unmanaged, with a foreign key to the audit logs) needs.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)]

XSS = "<script>alert('script')</script> <img src=x onerror=\"alert('onerror')\"> [click me](javascript:alert('js'))"


@pytest.fixture
def runbooks(transactional_db, settings):  # noqa: F811 - the pytest-django fixture
    from runbooks.services import runbooks_embed

    settings.AIHELPER_CONFIDENCE_THRESHOLD = 0.0
    settings.LLM_PROVIDER = "offline"
    disk = RunbookFactory(
        slug="e2e/node-disk-full", name="NodeDiskFull",
        description="The root filesystem of a Kubernetes node is almost full and pods are being evicted.",
        tags=["disk", "node"], steps=[{"title": "Check disk usage", "detail": "", "command": "df -h /"}],
    )
    evil = RunbookFactory(
        slug="e2e/evil-disk", name="DiskCleanup<script>alert('name')</script>",
        description="Disk full cleanup " + XSS,
        tags=["disk"], body_markdown="# Clean\n" + XSS + "\n<iframe src=\"https://evil.example\"></iframe>",
        steps=[{"title": "Clean <img src=x onerror=alert('step')>", "detail": XSS, "command": "echo `id`"}],
    )
    runbooks_embed()
    return {"disk": disk, "evil": evil}


def _ask(page, text):
    page.get_by_label("Your message").fill(text)
    page.get_by_label("Your message").press("Enter")
    page.locator("#chat-messages .msg-assistant:not(.msg-pending)").last.wait_for()


def _assert_inert(page):
    page.wait_for_timeout(300)
    assert page.dialogs == []
    assert page.evaluate("document.querySelectorAll('#main script, .chat-messages script').length") == 0
    assert page.evaluate("document.querySelectorAll('.chat-messages [onerror], .chat-messages iframe').length") == 0
    hrefs = page.eval_on_selector_all(".chat-messages a", "links => links.map(a => a.getAttribute('href') || '')")
    assert not [href for href in hrefs if href.strip().lower().startswith("javascript")]


def test_chat_page_streams_an_answer_with_cards_and_reloads_history(live_server, login, runbooks):
    UserFactory(username="alice")
    page = login("alice")
    expect_focus = page.evaluate("document.activeElement.id")
    assert expect_focus == "chat-input"
    _ask(page, "node disk is full and pods are evicted")
    answer = page.locator("#chat-messages .msg-assistant").last
    assert "NodeDiskFull" in answer.inner_text()
    assert answer.locator(".runbook-card").count() >= 1
    link = answer.locator(f"a.runbook-link[data-runbook-id='{runbooks['disk'].pk}']").first
    log = AuditLog.objects.get()
    assert link.get_attribute("data-audit-log-id") == str(log.pk)
    assert link.get_attribute("data-rank")
    assert "/chat/" in page.url and str(log.session_id) in page.url
    page.locator("#session-list a").first.wait_for()  # the sidebar refreshes after the answer (htmx)
    assert page.locator("#session-list a").count() == 1
    _assert_inert(page)

    page.reload()
    answer = page.locator("#chat-messages .msg-assistant").last
    assert answer.locator(f"a[data-audit-log-id='{log.pk}'][data-rank]").count() >= 1
    _ask(page, "what if df shows the disk is fine?")
    assert ChatSession.objects.count() == 1
    assert page.locator("#chat-messages .msg-user").count() == 2
    assert page.console_errors == [], "\n".join(page.console_errors)


def test_widget_answers_with_page_context(live_server, login, runbooks):
    UserFactory(username="bob")
    page = login("bob")
    assert page.locator("#agent-widget").count() == 0  # not on the chat page itself
    page.goto(f"{live_server.url}/runbooks/")
    page.get_by_role("button", name="Ask the runbook helper").click()
    widget_input = page.get_by_label("Message for the runbook helper")
    assert page.evaluate("document.activeElement.id") == "agent-widget-input"
    widget_input.fill("node disk is full")
    widget_input.press("Enter")
    answer = page.locator("#agent-widget-messages .msg-assistant:not(.msg-pending)").last
    answer.wait_for()
    assert answer.locator(".runbook-card").count() >= 1
    log = AuditLog.objects.get()
    assert log.source == "widget"
    assert log.ai_action_details["page_context"]["path"] == "/runbooks/"
    # The conversation follows the engineer to the next page.
    page.goto(f"{live_server.url}/runbooks/{runbooks['disk'].pk}/")
    page.get_by_role("button", name="Ask the runbook helper").click()
    page.locator("#agent-widget-messages .msg-assistant").first.wait_for()
    widget_input = page.get_by_label("Message for the runbook helper")
    widget_input.fill("and then?")
    widget_input.press("Enter")
    page.locator("#agent-widget-messages .msg-assistant:not(.msg-pending)").nth(1).wait_for()
    second = AuditLog.objects.order_by("created_at").last()
    assert second.session_id == log.session_id
    assert second.ai_action_details["page_context"]["runbook_id"] == str(runbooks["disk"].pk)
    assert page.dialogs == []


def test_phone_width_is_usable(live_server, browser, runbooks):
    UserFactory(username="carol")
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/chat/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.get_by_label("Your message").is_visible()
    context.close()


def test_malicious_runbook_and_llm_answer_render_inert(live_server, login, runbooks, settings):
    fake = FakeAnthropic(text="Try this: " + XSS + f" and [Evil](/runbooks/{runbooks['evil'].pk}/)"
                         " <iframe src='https://evil.example'></iframe> [bad](JaVaScRiPt:alert('x'))").start()
    settings.LLM_PROVIDER = "anthropic"
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = fake.url
    settings.ANTHROPIC_MAX_RETRIES = 0
    try:
        UserFactory(username="dave")
        page = login("dave")
        with page.expect_response("**/chat/stream") as streamed:
            _ask(page, "disk full cleanup")
        body = streamed.value.text()
        assert body.count("event: delta") >= 2 and "event: done" in body  # the SDK's stream, relayed
        _assert_inert(page)
        log = AuditLog.objects.get()
        assert log.llm_provider == "anthropic" and not log.degraded, log.error
        assert "alert(" in page.locator("#chat-messages").inner_text()  # shown as text, not run
        for link in page.locator("#chat-messages a").all():
            href = link.get_attribute("href") or ""
            if href.startswith("/runbooks/"):
                continue
            link.click(no_wait_after=True)
        _assert_inert(page)
        page.reload()
        _assert_inert(page)
        page.goto(f"{live_server.url}/runbooks/{runbooks['evil'].pk}/")
        page.wait_for_timeout(300)
        assert page.dialogs == []
    finally:
        fake.stop()


def test_a_pasted_secret_is_replaced_in_the_question_with_a_notice(live_server, login, runbooks):
    UserFactory(username="alice")
    page = login("alice")
    _ask(page, "node disk is full, backup to postgres://app:Pg-s3cret-42@db:5432/app fails")
    question = page.locator("#chat-messages .msg-user").last
    assert "Pg-s3cret-42" not in question.inner_text()
    assert "[redacted: url-password]" in question.inner_text()
    assert question.locator(".redaction-notice").inner_text().strip().endswith(
        "1 secret was removed before this message was sent."
    )
    page.reload()
    assert "Pg-s3cret-42" not in page.content()
    assert page.locator("#chat-messages .msg-user .redaction-notice").count() == 1
    assert page.console_errors == [], "\n".join(page.console_errors)
