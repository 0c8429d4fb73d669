import re

import pytest
from django.urls import reverse

from runbooks.services import runbook_upsert
from tests.factories import GroupFactory
from tests.runbooks.corpus import load_corpus
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(django_capture_on_commit_callbacks):
    load_corpus(django_capture_on_commit_callbacks)


def test_pages_require_login(client):
    runbook = RunbookFactory()
    for url in (reverse("runbooks:search"), reverse("runbooks:detail", args=[runbook.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert "login" in response["Location"]


def test_search_page_full_and_htmx_partial(auth_client, corpus):
    page = auth_client.get(reverse("runbooks:search"), {"q": "Pod is crash looping"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "<html" in html and "PodCrashLooping" in html and "Recommended" in html and "crashloop" in html
    assert "no executions yet" in html

    partial = auth_client.get(reverse("runbooks:search"), {"q": "Pod is crash looping"}, headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert "<html" not in body and 'id="results"' in body and "confidence" in body


def test_search_page_without_query_shows_form(auth_client):
    response = auth_client.get(reverse("runbooks:search"))
    assert response.status_code == 200 and 'name="q"' in response.content.decode()


def test_empty_query_is_a_400_with_message(auth_client):
    response = auth_client.get(reverse("runbooks:search"), {"q": "   "}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "query is empty" in response.content.decode()


def test_long_query_shows_notice(auth_client, corpus, settings):
    settings.AIHELPER_MAX_QUERY_CHARS = 100
    response = auth_client.get(reverse("runbooks:search"), {"q": "disk full " * 40})
    assert "only its first 100 characters" in response.content.decode()


def test_detail_renders_markdown_safely(auth_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        runbook, _ = runbook_upsert(
            slug="t/xss",
            data={
                "name": "XssProbe",
                "body_markdown": "# Heading\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2)) "
                '<img src=x onerror="alert(3)">\n\n**bold**',
                "steps": [{"title": "<b>step</b>", "detail": "", "command": "echo '<script>'"}],
            },
        )
    response = auth_client.get(reverse("runbooks:detail", args=[runbook.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Heading</h1>" in html and "<strong>bold</strong>" in html
    assert "<script>alert" not in html
    assert "<img" not in html and "&lt;img src=x" in html  # the tag is escaped text, its onerror inert
    assert 'href="javascript' not in html  # the link is left as inert text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;step&lt;/b&gt;" in html


def test_restricted_runbook_detail_is_404(auth_client, user):
    restricted = RunbookFactory(allowed_groups=[GroupFactory(name="secret")])
    disabled = RunbookFactory(enabled=False)
    assert auth_client.get(reverse("runbooks:detail", args=[restricted.pk])).status_code == 404
    assert auth_client.get(reverse("runbooks:detail", args=[disabled.pk])).status_code == 404
    user.groups.add(GroupFactory(name="secret"))
    assert auth_client.get(reverse("runbooks:detail", args=[restricted.pk])).status_code == 200


def test_a_runbook_one_may_not_see_gets_the_same_friendly_page_as_a_missing_one(auth_client):
    restricted = RunbookFactory(allowed_groups=[GroupFactory(name="secret")])
    hidden = auth_client.get(reverse("runbooks:detail", args=[restricted.pk]))
    missing = auth_client.get(reverse("runbooks:detail", args=["00000000-0000-4000-8000-000000000000"]))
    assert hidden.status_code == missing.status_code == 404
    assert "Runbook not found" in hidden.content.decode()
    def without_tokens(response):
        return re.sub(r'(csrf-token="|X-CSRFToken": "|value=")[^"]+', r"\1", response.content.decode())

    assert without_tokens(hidden) == without_tokens(missing)


def test_who_may_run_is_stated_as_the_rule(auth_client, user):
    manual = RunbookFactory()
    staff_only = RunbookFactory(is_automated=True)
    grouped = RunbookFactory(is_automated=True, allowed_groups=[GroupFactory(name="sre"), GroupFactory(name="dba")])
    user.groups.add(grouped.allowed_groups.get(name="sre"))

    def page(runbook):
        return auth_client.get(reverse("runbooks:detail", args=[runbook.pk])).content.decode()

    assert "Anyone who can see this runbook may run it." in page(manual)
    assert "Restricted: only staff may run this automated runbook." in page(staff_only)
    assert "Automated runbook: only staff or members of dba, sre may run it, and you may." in page(grouped)


def test_detail_never_shows_front_matter_or_repeats_the_steps(auth_client):
    runbook = RunbookFactory(
        name="NodeDiskFull",
        steps=[{"title": "Check disk usage", "detail": "", "command": "df -h /"}],
        body_markdown="---\ntitle: NodeDiskFull\nweight: 20\n---\n# NodeDiskFull\n\n## Meaning\n\nThe disk is full.\n\n"
        "## Mitigation\n\nCheck disk usage\n\n```\ndf -h /\n```\n",
    )
    html = auth_client.get(reverse("runbooks:detail", args=[runbook.pk])).content.decode()
    assert "title: NodeDiskFull" not in html and "weight" not in html
    assert html.count("df -h /") == 1 and "The disk is full." in html


def test_the_readable_title_from_front_matter_is_shown_under_the_alert_name(auth_client):
    named = RunbookFactory(name="NodeDiskFull", display_title="Node disk almost full")
    same = RunbookFactory(name="Disk full", display_title="Disk full")
    html = auth_client.get(reverse("runbooks:detail", args=[named.pk])).content.decode()
    assert '<p class="subtitle">Node disk almost full</p>' in html
    assert 'class="subtitle"' not in auth_client.get(reverse("runbooks:detail", args=[same.pk])).content.decode()
