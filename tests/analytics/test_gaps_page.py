"""Admin → Analytics → Gaps and "Draft a runbook" over HTTP, on the planted topics (gaps_fixtures.py)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.urls import reverse

from analytics.services import gaps
from analytics.services.gaps import gap_report, gap_source
from analytics.services.parameters import analytics_parameters_parse
from runbooks.models import Runbook, RunbookOrigin, RunbookStatus
from tests.analytics.fixtures import event, make_log
from tests.analytics.gaps_fixtures import END, KAFKA, START, plant
from tests.factories import UserFactory
from tests.fake_anthropic import FakeAnthropic
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db
RANGE = {"start": "2026-01-05", "end": "2026-01-18"}
PAGE = "admin:analytics_gaps"


@pytest.fixture
def planted(user):
    return plant(user)


def kafka_group(user):
    return next(g for g in gap_report(user=user, start=START, end=END).groups if set(g.texts) <= set(KAFKA))


def test_staff_see_the_groups_covered_or_not_with_examples_and_nearest_runbooks(client, planted, staff_user):
    client.force_login(staff_user)
    html = client.get(reverse(PAGE), RANGE).content.decode()
    assert html.count("Not covered") == 1 and html.count(">Covered<") == 2
    assert "kafka consumer lag keeps growing" in html and "6 questions" in html
    assert "Renew an expired TLS certificate" in html  # a superuser may see it
    assert "Share that ended in a failed run: 33.3%" in html
    assert 'role="img" aria-label="Questions per' in html
    assert html.count("Draft a runbook") == 1  # only on the group nobody covers


def test_a_restricted_staff_member_does_not_see_restricted_runbooks(client, planted):
    staff = UserFactory(username="staff-no-secret", is_staff=True)
    client.force_login(staff)
    html = client.get(reverse(PAGE), RANGE).content.decode()
    assert "Renew an expired TLS certificate" not in html
    assert html.count("Not covered") == 2


def test_not_staff_and_anonymous_are_sent_to_the_login(client, user):
    assert client.get(reverse(PAGE)).status_code == 302
    client.force_login(user)
    assert client.get(reverse(PAGE)).status_code == 302
    assert client.post(reverse("gap_draft"), {}).status_code == 302


def test_a_bad_range_is_a_400_in_words(client, staff_user):
    client.force_login(staff_user)
    response = client.get(reverse(PAGE), {"start": "2026-01-12", "end": "2026-01-10"})
    assert response.status_code == 400
    assert "must be before end" in response.content.decode()


def test_draft_a_runbook_offline_saves_a_draft_linked_to_the_group(client, planted, staff_user, settings):
    settings.LLM_PROVIDER, settings.ANTHROPIC_API_KEY = "offline", ""
    client.force_login(staff_user)
    group = kafka_group(staff_user)
    response = client.post(reverse("gap_draft"), {**RANGE, "group": str(group.key)})
    assert response.status_code == 303 and response["Location"].endswith("drafted=1")
    draft = Runbook.objects.get(origin=RunbookOrigin.GAP_REPORT)
    assert (draft.status, draft.origin_source) == (RunbookStatus.DRAFT, gap_source(group.key))
    assert draft.name.startswith("Draft: kafka")
    assert [step["title"] for step in draft.steps] == ["Confirm the symptom", "Find the cause", "Fix it", "Verify"]
    assert all(text in draft.steps[0]["detail"] for text in KAFKA)
    html = client.get(response["Location"]).content.decode()
    assert "Draft runbook saved for review" in html and "Draft written: <a href=" in html
    draft = Runbook.objects.get(origin="gap_report")
    assert f'href="{reverse("runbooks:edit", args=[draft.pk])}"' in html  # drafts open in the runbook editor
    assert "Not covered" in html  # a draft is not searched, so it covers nothing yet


def test_asking_twice_for_a_groups_draft_keeps_one_open_draft(client, planted, staff_user, settings):
    """A double click (or a retry after a slow LLM) must not leave two drafts of the same gap; once the draft is
    published, the group may be drafted again."""
    settings.LLM_PROVIDER, settings.ANTHROPIC_API_KEY = "offline", ""
    client.force_login(staff_user)
    group = kafka_group(staff_user)
    for _ in range(2):
        response = client.post(reverse("gap_draft"), {**RANGE, "group": str(group.key)})
        assert response.status_code == 303 and response["Location"].endswith("drafted=1")
    drafts = Runbook.objects.filter(origin=RunbookOrigin.GAP_REPORT)
    assert drafts.count() == 1
    drafts.update(status=RunbookStatus.ACTIVE)
    client.post(reverse("gap_draft"), {**RANGE, "group": str(group.key)})
    assert Runbook.objects.filter(origin=RunbookOrigin.GAP_REPORT, status=RunbookStatus.DRAFT).count() == 1
    assert Runbook.objects.filter(origin=RunbookOrigin.GAP_REPORT).count() == 2


def test_draft_a_runbook_with_anthropic_goes_through_the_model(client, planted, staff_user, settings):
    reply = {
        "name": "Kafka consumer lag",
        "description": "Consumers fall behind.",
        "steps": [{"title": "Check the lag", "detail": "per partition", "command": "kafka-consumer-groups --describe"}],
    }
    server = FakeAnthropic(text=json.dumps(reply), sleep=0).start()
    settings.LLM_PROVIDER, settings.ANTHROPIC_API_KEY = "anthropic", "test-key"
    settings.ANTHROPIC_BASE_URL, settings.ANTHROPIC_MODEL = server.url, "claude-test"
    settings.ANTHROPIC_TIMEOUT, settings.ANTHROPIC_MAX_RETRIES = 5, 0
    try:
        client.force_login(staff_user)
        group = kafka_group(staff_user)
        assert client.post(reverse("gap_draft"), {**RANGE, "group": str(group.key)}).status_code == 303
        sent = server.requests[-1]["json"]["messages"][0]["content"]
    finally:
        server.stop()
    draft = Runbook.objects.get(origin=RunbookOrigin.GAP_REPORT)
    assert (draft.name, draft.status) == ("Kafka consumer lag", RunbookStatus.DRAFT)
    assert draft.steps[0]["command"] == "kafka-consumer-groups --describe"
    assert all(text in sent for text in KAFKA)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"group": "not-a-uuid"}, "group must be the id of a group"),
        ({"group": "00000000-0000-0000-0000-000000000000"}, "not in the report of this range"),
        (
            {"start": "2026-01-12", "end": "2026-01-10", "group": "00000000-0000-0000-0000-000000000000"},
            "must be before end",
        ),
    ],
)
def test_a_bad_draft_request_is_a_400_in_words(client, staff_user, data, words):
    client.force_login(staff_user)
    response = client.post(reverse("gap_draft"), {**RANGE, **data})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not Runbook.objects.filter(origin=RunbookOrigin.GAP_REPORT).exists()
    assert client.get(reverse("gap_draft")).status_code == 405


def test_runbook_health_lists_rarely_clicked_and_does_not_fit_with_figures(client, user, staff_user):
    from tests.factories import GroupFactory

    owners = GroupFactory(name="office-it")
    printer = RunbookFactory(slug="misc/printer", name="Printer out of paper", owner_group=owners)
    fine = RunbookFactory(slug="misc/fine", name="A fine runbook")
    at = dt.datetime(2026, 1, 6, 9, tzinfo=dt.UTC)
    for i in range(20):
        log = make_log(
            user=user,
            created_at=at + i * dt.timedelta(hours=1),
            strategy="multiple_options",
            presented=[printer, fine],
            query="printer jammed",
        )
        event(log, fine, "clicked_link", log.created_at + dt.timedelta(seconds=5))
        if i < 3:
            event(log, printer, "feedback_negative", log.created_at + dt.timedelta(seconds=9))
    client.force_login(staff_user)
    html = client.get(reverse(PAGE), RANGE).content.decode()
    health = html.split('id="health-title"')[1]
    assert "rarely clicked: 0 of 20 times shown (0%)" in health
    assert "marked &quot;Does not fit&quot; 3 times in 20 times shown (15%)" in health
    assert "A fine runbook" not in health
    # The flags link to who can act on them: the owning group (#20).
    assert f'Owners: <a href="{reverse("admin:auth_group_change", args=[owners.pk])}">office-it</a>' in health


def test_a_draft_restricted_to_a_group_is_not_named_to_staff_outside_it(client, planted, staff_user):
    group = kafka_group(staff_user)
    RunbookFactory(
        slug="secret/kafka-internal",
        name="Internal Kafka playbook",
        origin=RunbookOrigin.GAP_REPORT,
        origin_source=gap_source(group.key),
        status=RunbookStatus.DRAFT,
        allowed_groups=[planted.cert_runbook.allowed_groups.get()],
    )
    client.force_login(UserFactory(username="staff-no-secret", is_staff=True))
    html = client.get(reverse(PAGE), RANGE).content.decode()
    assert "kafka consumer lag keeps growing" in html and "Internal Kafka playbook" not in html
    client.force_login(staff_user)
    assert "Draft written: <a href=" in client.get(reverse(PAGE), RANGE).content.decode()


def test_a_draft_names_no_restricted_runbook_and_is_not_shown_to_engineers(client, planted, staff_user, user,
                                                                            settings):
    settings.LLM_PROVIDER, settings.ANTHROPIC_API_KEY = "offline", ""
    client.force_login(staff_user)
    group = kafka_group(staff_user)
    assert "Renew an expired TLS certificate" in [runbook.name for runbook in group.nearest]  # the superuser sees it
    client.post(reverse("gap_draft"), {**RANGE, "group": str(group.key)})
    draft = Runbook.objects.get(origin=RunbookOrigin.GAP_REPORT)
    assert "Renew an expired TLS certificate" not in draft.description
    # The draft quotes staff-only questions: an engineer gets the not-found page until it is activated.
    client.force_login(user)
    assert client.get(reverse("runbooks:detail", args=[draft.pk])).status_code == 404


def test_long_questions_make_a_draft_within_the_step_limits(planted, staff_user):
    from dataclasses import replace

    from aihelper.chat.services.gap_drafts import _skeleton
    from runbooks.models import STEP_MAX_CHARS, validate_steps

    group = replace(kafka_group(staff_user), texts=["kafka consumer lag " + "x" * 700] * 12)
    fields = _skeleton(group, start=START, end=END)
    validate_steps(fields["steps"])  # raises ValidationError (the 500 of before) when a step is too long
    assert len(fields["steps"][0]["detail"]) <= STEP_MAX_CHARS and fields["steps"][0]["detail"].count("- kafka") == 12


def test_a_question_over_several_lines_or_with_invisible_characters_still_makes_a_draft(client, planted, staff_user,
                                                                                     settings):
    """A runbook name refuses newlines and zero-width characters; a pasted question has them: the draft's name is
    the question on one line without them, not a refusal that would leave the group without a draft for ever."""
    settings.LLM_PROVIDER, settings.ANTHROPIC_API_KEY = "offline", ""
    from dataclasses import replace

    from aihelper.chat.services.gap_drafts import _skeleton

    group = replace(kafka_group(staff_user), texts=["kafka\u200b consumer lag\n\tkeeps growing\ufeff", *KAFKA])
    fields = _skeleton(group, start=START, end=END)
    assert fields["name"] == "Draft: kafka consumer lag keeps growing"
    Runbook(slug="drafts/x", **fields).full_clean()  # the name the editor and the model accept


def test_the_draft_form_carries_the_exact_range_of_the_page(client, planted, staff_user):
    client.force_login(staff_user)
    page = {"start": "2026-01-05T12:00:00+00:00", "end": "2026-01-18T18:30:00+00:00"}
    html = client.get(reverse(PAGE), page).content.decode()
    form = html.split('class="gaps-draft-form"')[1]
    posted = dict(re.findall(r'<input type="hidden" name="(start|end)" value="([^"]*)">', form))
    shown = analytics_parameters_parse(query=page)
    again = analytics_parameters_parse(query=posted)
    assert (again.start, again.end) == (shown.start, shown.end)


def test_a_range_with_more_questions_than_the_cap_says_only_the_most_recent_are_grouped(
    client, planted, staff_user, monkeypatch
):
    monkeypatch.setattr(gaps, "MAX_CANDIDATES", 10)
    report = gap_report(user=staff_user, start=START, end=END)
    assert (report.candidates, report.grouped_from) == (16, 10)
    assert sum(group.size for group in report.groups) + report.ungrouped == 10
    client.force_login(staff_user)
    html = client.get(reverse(PAGE), RANGE).content.decode()
    assert "Only the most recent 10 of the 16 questions are grouped" in html
