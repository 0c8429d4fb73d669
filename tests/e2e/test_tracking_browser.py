"""Browser side of click tracking (docs/tracking.md, "Browser side"): what the engineer does with an
answer reaches the audit log and the event store, from the chat page and from the widget."""

import time

import pytest
from django.conf import settings

from audit.models import AuditLog, RunbookInteractionEvent
from runbooks.models import RunbookExecution
from tests.factories import UserFactory
from tests.fake_anthropic import FakeAnthropic
from tests.runbooks.factories import RunbookFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)]

STEPS = [
    {"title": "Check disk usage", "detail": "", "command": "df -h /"},
    {"title": "Prune unused images", "detail": "", "command": "crictl rmi --prune"},
]


@pytest.fixture
def runbooks(transactional_db, settings):  # noqa: F811 - the pytest-django fixture
    from runbooks.services import runbooks_embed

    settings.AIHELPER_CONFIDENCE_THRESHOLD = 0.0
    settings.LLM_PROVIDER = "offline"
    disk = RunbookFactory(
        slug="e2e/node-disk-full", name="NodeDiskFull", steps=STEPS, tags=["disk", "node"],
        description="The root filesystem of a Kubernetes node is almost full and pods are being evicted.",
    )
    evicted = RunbookFactory(
        slug="e2e/pods-evicted", name="PodsEvicted", steps=STEPS, tags=["pods", "disk"],
        description="Pods are evicted because of disk pressure on the node.",
    )
    runbooks_embed()
    return {"disk": disk, "evicted": evicted}


def _wait_for(condition, timeout=10.0):
    """The tracking request runs alongside the navigation: poll the database until it has landed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _clicks(log):
    return AuditLog.objects.get(pk=log.pk).user_modifications.get("clicks", [])


def _ask(page, text):
    page.get_by_label("Your message").fill(text)
    page.get_by_label("Your message").press("Enter")
    page.locator("#chat-messages .msg-assistant:not(.msg-pending)").last.wait_for()


def _track_requests(page):
    sent = []
    page.on("request", lambda request: "/api/ai-helper/track-choice" in request.url and sent.append(request))
    return sent


def test_chat_page_click_is_tracked_viewed_and_executed_end_to_end(live_server, login, runbooks):
    UserFactory(username="alice")
    page = login("alice")
    _ask(page, "node disk is full and pods are evicted")
    log = AuditLog.objects.get()
    link = page.locator("#chat-messages .msg-assistant .msg-body a.runbook-link").first
    runbook_id, rank = link.get_attribute("data-runbook-id"), int(link.get_attribute("data-rank"))
    assert link.get_attribute("href") == f"/runbooks/{runbook_id}/?from={log.pk}"  # rendered by the server
    link.click()
    page.wait_for_url(f"**/runbooks/{runbook_id}/?from={log.pk}&source=chat_page")

    clicks = _wait_for(lambda: _clicks(log))
    assert len(clicks) == 1
    assert clicks[0]["solution_chosen_id"] == runbook_id and clicks[0]["rank"] == rank
    assert clicks[0]["source"] == "chat_page" and clicks[0]["user_action"] == "clicked_link"
    clicked = RunbookInteractionEvent.objects.get(event_type="clicked_link")
    assert (str(clicked.runbook_id), clicked.rank, clicked.source, clicked.audit_log_id) == (
        runbook_id, rank, "chat_page", log.pk)
    assert str(clicked.event_id) == clicks[0]["event_id"]
    viewed = RunbookInteractionEvent.objects.get(event_type="viewed_detail")
    assert (str(viewed.runbook_id), viewed.rank, viewed.source, viewed.audit_log_id) == (
        runbook_id, rank, "chat_page", log.pk)

    # Execution from the recommendation: start, tick every step, finish.
    page.get_by_role("button", name="Start execution").click()
    page.wait_for_url("**/executions/**")
    for number in (1, 2):
        page.get_by_role("button", name=f"Mark step {number} done").click()
        page.get_by_role("button", name=f"Mark step {number} not done").wait_for()
    page.get_by_role("button", name="Finish: it worked").click()
    page.locator(".execution-status[data-status='succeeded']").wait_for()
    execution = RunbookExecution.objects.get()
    assert execution.status == "succeeded" and execution.audit_log_id == log.pk
    assert str(execution.runbook_id) == runbook_id
    assert all(execution.step_progress[str(index)]["done"] for index in range(len(STEPS)))
    started = RunbookInteractionEvent.objects.get(event_type="started_execution")
    succeeded = RunbookInteractionEvent.objects.get(event_type="succeeded")
    assert (started.audit_log_id, started.rank, started.source) == (log.pk, rank, "chat_page")
    assert (succeeded.audit_log_id, succeeded.rank) == (log.pk, rank)
    assert succeeded.metadata["execution_id"] == str(execution.pk)
    assert page.console_errors == [], "\n".join(page.console_errors)


def test_history_answer_is_tracked_and_other_links_are_not(live_server, login, runbooks, settings):
    disk = runbooks["disk"]
    fake = FakeAnthropic(text=f"Read [the chat help](/chat/) first, then follow [NodeDiskFull](/runbooks/{disk.pk}/).")
    fake.start()
    settings.LLM_PROVIDER = "anthropic"
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = fake.url
    settings.ANTHROPIC_MAX_RETRIES = 0
    try:
        UserFactory(username="erin")
        page = login("erin")
        sent = _track_requests(page)
        _ask(page, "node disk is full")
        log = AuditLog.objects.get()
        assert log.llm_provider == "anthropic", log.error
        plain = page.locator("#chat-messages .msg-assistant .msg-body a", has_text="the chat help")
        assert plain.get_attribute("class") is None
        plain.click()  # a link inside the answer, but not to a runbook
        page.wait_for_url(f"{live_server.url}/chat/")
        page.get_by_role("link", name="New chat").click()  # a link outside the answers
        page.wait_for_load_state()

        # The conversation reloaded from history (the sidebar swaps it in with htmx): tracked too.
        page.locator("#session-list a").first.click()
        page.wait_for_url(f"**/chat/{log.session_id}/")
        page.locator("#chat-messages .runbook-card").first.wait_for()
        assert sent == [] and _clicks(log) == []
        card = page.locator("#chat-messages .runbook-card a.runbook-link").nth(1)
        runbook_id, rank = card.get_attribute("data-runbook-id"), int(card.get_attribute("data-rank"))
        with page.context.expect_page() as opened:
            card.click(button="middle")  # new tab: tracked via auxclick, this page stays
        opened.value.wait_for_load_state()
        assert "source=chat_page" in opened.value.url and f"from={log.pk}" in opened.value.url
        clicks = _wait_for(lambda: _clicks(log))
        assert [(c["solution_chosen_id"], c["rank"], c["source"]) for c in clicks] == [(runbook_id, rank, "chat_page")]
        assert _wait_for(lambda: RunbookInteractionEvent.objects.filter(
            event_type="viewed_detail", runbook_id=runbook_id, source="chat_page").exists())
        opened.value.close()
        assert len(sent) == 1
    finally:
        fake.stop()


def test_widget_click_history_and_thumbs(live_server, login, runbooks):
    UserFactory(username="bob")
    page = login("bob")
    page.goto(f"{live_server.url}/runbooks/")  # the widget is on every page but the chat page itself
    page.get_by_role("button", name="Ask the runbook helper").click()
    widget_input = page.get_by_label("Message for the runbook helper")
    widget_input.fill("node disk is full")
    widget_input.press("Enter")
    answer = page.locator("#agent-widget-messages .msg-assistant:not(.msg-pending)").last
    answer.wait_for()
    log = AuditLog.objects.get()
    link = answer.locator(".msg-body a.runbook-link").first
    runbook_id, rank = link.get_attribute("data-runbook-id"), int(link.get_attribute("data-rank"))
    link.click()
    page.wait_for_url(f"**/runbooks/{runbook_id}/?from={log.pk}&source=widget")
    clicks = _wait_for(lambda: _clicks(log))
    assert [(c["solution_chosen_id"], c["rank"], c["source"]) for c in clicks] == [(runbook_id, rank, "widget")]
    assert RunbookInteractionEvent.objects.filter(
        event_type="clicked_link", runbook_id=runbook_id, rank=rank, source="widget", audit_log=log).count() == 1
    assert RunbookInteractionEvent.objects.filter(
        event_type="viewed_detail", runbook_id=runbook_id, rank=rank, source="widget", audit_log=log).count() == 1

    # On the runbook page the widget reloads the conversation from history.
    page.get_by_role("button", name="Ask the runbook helper").click()
    answer = page.locator("#agent-widget-messages .msg-assistant").first
    answer.wait_for()
    card = answer.locator(".runbook-card").nth(1)
    card_runbook, card_rank = card.get_attribute("data-runbook-id"), int(card.get_attribute("data-rank"))
    title = card.locator("a.runbook-link").inner_text().split(". ", 1)[1]
    thumbs_up = card.get_by_role("button", name=f"{title} fits")
    thumbs_up.click()
    card.get_by_role("status").get_by_text("Thanks, noted as helpful.").wait_for()
    assert thumbs_up.get_attribute("aria-pressed") == "true"
    assert card.get_by_role("button", name=f"{title} does not fit").get_attribute("aria-pressed") == "false"
    feedback = RunbookInteractionEvent.objects.get(event_type="feedback_positive")
    assert (str(feedback.runbook_id), feedback.rank, feedback.source, feedback.audit_log_id) == (
        card_runbook, card_rank, "widget", log.pk)

    answer.get_by_role("button", name="Not helpful", exact=True).click()
    answer.locator(".feedback-answer").get_by_text("Thanks, noted as not helpful.").wait_for()
    entries = AuditLog.objects.get(pk=log.pk).user_modifications["feedback"]
    assert [entry["rating"] for entry in entries] == ["down"]

    with page.expect_navigation():
        card.locator("a.runbook-link").click()
    assert "source=widget" in page.url
    clicks = _wait_for(lambda: len(_clicks(log)) == 2 and _clicks(log))
    assert clicks[1]["solution_chosen_id"] == card_runbook and clicks[1]["source"] == "widget"
    assert page.console_errors == [], "\n".join(page.console_errors)


def test_card_thumbs_failure_is_shown_and_a_retry_is_stored_once(live_server, login, runbooks):
    UserFactory(username="carol")
    page = login("carol")
    _ask(page, "node disk is full")
    log = AuditLog.objects.get()
    card = page.locator("#chat-messages .runbook-card").first
    title = card.locator("a.runbook-link").inner_text().split(". ", 1)[1]
    thumbs_down = card.get_by_role("button", name=f"{title} does not fit")
    bodies = []

    def fail_once(route):
        bodies.append(route.request.post_data_json)
        if len(bodies) == 1:
            route.fulfill(status=503, content_type="application/json", body='{"error": "unavailable"}')
        else:
            route.continue_()

    page.route("**/api/ai-helper/events", fail_once)
    thumbs_down.click()
    card.get_by_text("Your feedback could not be saved (HTTP 503). Try again.").wait_for()
    assert thumbs_down.get_attribute("aria-pressed") == "false"
    assert not RunbookInteractionEvent.objects.filter(event_type="feedback_negative").exists()

    thumbs_down.click()
    card.get_by_text("Thanks, noted as not helpful.").wait_for()
    assert thumbs_down.get_attribute("aria-pressed") == "true"
    thumbs_down.click()  # already recorded: nothing is sent again
    page.wait_for_timeout(200)
    assert len(bodies) == 2
    sent = [body["events"][0] for body in bodies]
    assert sent[0]["event_id"] == sent[1]["event_id"]  # the retry is the same event
    assert sent[1]["event_type"] == "feedback_negative" and sent[1]["source"] == "chat_page"
    event = RunbookInteractionEvent.objects.get(event_type="feedback_negative")
    assert (str(event.runbook_id), event.rank, event.audit_log_id) == (
        card.get_attribute("data-runbook-id"), int(card.get_attribute("data-rank")), log.pk)
