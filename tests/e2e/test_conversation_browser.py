"""A conversation on the chat page (#18): follow-up, step reference, topic shift, and a click on a carried card."""

import pytest
from django.conf import settings

from audit.models import AuditLog, RunbookInteractionEvent
from tests.factories import UserFactory

# available_apps: the flush between tests must TRUNCATE ... CASCADE the partitioned event table.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)]


@pytest.fixture
def demo(transactional_db, settings):  # noqa: F811 - the pytest-django fixture
    from runbooks.demo import demo_runbooks_ensure
    from runbooks.services import runbooks_embed

    settings.LLM_PROVIDER = "offline"
    demo_runbooks_ensure()
    runbooks_embed()


def _ask(page, text):
    before = page.locator("#chat-messages .msg-assistant:not(.msg-pending)").count()
    page.get_by_label("Your message").fill(text)
    page.get_by_label("Your message").press("Enter")
    answer = page.locator("#chat-messages .msg-assistant:not(.msg-pending)").nth(before)
    answer.wait_for()
    return answer


def test_a_conversation_keeps_its_runbook_then_moves_to_a_new_problem(live_server, login, demo):
    UserFactory(username="alice")
    page = login("alice")

    first = _ask(page, "redis is evicting keys, used memory at maxmemory")
    assert "RedisMemoryHighEvictions" in first.locator(".runbook-card").first.inner_text()
    assert first.locator(".tag-carried").count() == 0

    follow = _ask(page, "how do I fix it quickly?")
    card = follow.locator(".runbook-card").first
    assert "RedisMemoryHighEvictions" in card.inner_text()
    assert card.locator(".tag-carried").inner_text() == "From earlier in this conversation"
    assert "No matching runbook" not in follow.inner_text()

    step = _ask(page, "what does step 3 do?")
    assert "Step 3: Find big keys" in step.locator(".answer").inner_text()

    shift = _ask(page, "different issue: pods of the payments service keep crashlooping after the deploy")
    assert "New topic." in shift.locator(".answer").inner_text()
    assert "PodCrashLooping" in shift.locator(".runbook-card").first.inner_text()
    assert shift.locator(".tag-carried").count() == 0

    # A click on the carried card of the follow-up counts for the turn that showed it.
    follow_log = AuditLog.objects.get(query="how do I fix it quickly?")
    link = follow.locator(".runbook-card a.runbook-link").first
    assert link.get_attribute("data-audit-log-id") == str(follow_log.pk)
    link.click()
    page.wait_for_url("**/runbooks/**")
    page.wait_for_load_state("networkidle")
    clicks = RunbookInteractionEvent.objects.filter(event_type="clicked_link")
    assert list(clicks.values_list("audit_log_id", "rank")) == [(follow_log.pk, 1)]
    assert follow_log.ai_action_details["solutions_presented"][0]["carried_over"] is True
    assert page.console_errors == [], "\n".join(page.console_errors)
