"""The /alerts/ page (docs/alerts.md, "Where engineers see it"): firing alerts grouped as Alertmanager grouped
them, each with the runbooks its reader may see; resolved ones below; inert alert text; one audited
presentation per (user, alert) whose cards' clicks go through the track-choice protocol with source alert; a
cheap poll."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.models import RecommendationEvidence
from audit.models import AuditLog, RunbookInteractionEvent
from tests.alerts.page_rows import page_alert, page_group, rank_runbooks
from tests.factories import GroupFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

URL = "/alerts/"
POLL = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "alerts-live"}
XSS = '<script>alert("x")</script><img src=x onerror="alert(1)">'


def _cards(html: str) -> list[tuple[str, str]]:
    return re.findall(r'class="runbook-link card-title" href="([^"]+)"[^>]*>([^<]+)</a>', html)


def test_login_is_required(client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert reverse("alerts:list") == URL


def test_a_poll_after_the_session_expired_sends_the_whole_page_to_the_login_form(client):
    response = client.get(URL, **POLL)
    # Not a 302 that htmx would follow and swap the login form into the list: a redirect of the whole page.
    assert response.status_code == 200 and response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?next=/alerts/"


def test_firing_alerts_grouped_newest_first_with_their_runbooks(auth_client, user):
    group = page_group(labels={"alertname": "KubePodCrashLooping", "namespace": "shop"},
                       external_url="https://alertmanager.example/#/alerts")
    older = page_alert(group=group, minutes_ago=40, labels={"pod": "cart-1"},
                       annotations={"description": "Pod cart-1 restarted 5 times"},
                       generator_url="https://prometheus.example/graph?g0.expr=up")
    newer = page_alert(group=group, minutes_ago=12, labels={"pod": "cart-2"})
    other = page_alert(group=page_group(labels={"alertname": "NodeDiskFull"}), alertname="NodeDiskFull",
                       minutes_ago=5, labels={"severity": "warning"})
    runbook = RunbookFactory(name="KubePodCrashLooping")
    automated = RunbookFactory(name="PodRestartAutomation", is_automated=True)
    rank_runbooks(older, (runbook, 0.99, RecommendationEvidence.LINKED), (automated, 0.7))
    rank_runbooks(newer, (runbook, 0.95))

    response = auth_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    # Groups by their newest alert, alerts newest first inside each.
    assert html.index(f'id="alert-{other.pk}"') < html.index(f'id="alert-{newer.pk}"') < html.index(
        f'id="alert-{older.pk}"')
    assert 'namespace</span>=<span class="label-value">shop' in html
    assert "Receiver <strong>alertmanager-prod</strong>" in html
    assert 'href="https://alertmanager.example/#/alerts"' in html
    assert 'href="https://prometheus.example/graph?g0.expr=up"' in html
    assert "Firing for <time" in html and ">12 min</time>" in html and ">40 min</time>" in html
    assert "Pod cart-1 restarted 5 times" in html
    assert '<span class="badge severity severity-warning">warning</span>' in html
    assert f'<details class="alert-labels" id="labels-{older.pk}">' in html and "<dd>cart-1</dd>" in html

    logs = {log.ai_action_details["page_context"]["alert_id"]: log for log in AuditLog.objects.all()}
    assert set(logs) == {older.pk, newer.pk}  # the third has no ranking yet (done, but nothing stored)
    log = logs[older.pk]
    assert (f"/runbooks/{runbook.pk}/?from={log.pk}&amp;source=alert", "1. KubePodCrashLooping") in _cards(html)
    assert (f"/runbooks/{automated.pk}/?from={log.pk}&amp;source=alert", "2. PodRestartAutomation") in _cards(html)
    assert f'data-audit-log-id="{log.pk}"' in html
    assert "High (99%)" in html and "Medium (70%)" in html
    assert "Linked by the alert rule</dd>" in html
    assert "You may run it" in html and "Restricted: you may not run it" in html
    assert f'action="/alerts/{older.pk}/ask"' in html and 'name="csrfmiddlewaretoken"' in html
    assert ">Ask about this alert</button>" in html


def test_the_ranking_is_filtered_and_re_ranked_for_the_reader(auth_client):
    alert = page_alert()
    hidden = RunbookFactory(name="DbaOnlyRunbook", allowed_groups=[GroupFactory(name="dba")])
    visible = RunbookFactory(name="VisibleRunbook")
    rank_runbooks(alert, (hidden, 0.99, RecommendationEvidence.LINKED), (visible, 0.8))
    html = auth_client.get(URL).content.decode()
    assert "DbaOnlyRunbook" not in html
    assert [title for _, title in _cards(html)] == ["1. VisibleRunbook"]
    log = AuditLog.objects.get()
    assert [(s["rank"], s["id"]) for s in log.ai_action_details["solutions_presented"]] == [(1, str(visible.pk))]


def test_recommendation_states_are_explained(auth_client):
    page_alert(alertname="PendingAlert", state="pending")
    page_alert(alertname="FailedAlert", state="failed")
    low = page_alert(alertname="LowAlert")
    rank_runbooks(low, (RunbookFactory(), 0.2))
    hidden = page_alert(alertname="HiddenAlert")
    rank_runbooks(hidden, (RunbookFactory(allowed_groups=[GroupFactory(name="dba")]), 0.9))
    html = auth_client.get(URL).content.decode()
    assert "Finding runbooks…" in html
    assert "Runbooks could not be found for this alert (the recommendation failed)" in html
    assert "No runbook is a confident match for this alert" in html
    assert "No runbook you can see matches this alert" in html
    assert "/runbooks/?q=FailedAlert" in html
    # Only the alert with a visible ranking was presented (no solutions: a knowledge-gap candidate).
    log = AuditLog.objects.get()
    assert log.ai_action_details["presentation_strategy"] == "no_solutions"
    assert log.ai_action_details["solutions_presented"] == []


def test_resolved_alerts_have_their_own_section_capped_with_a_more_link(auth_client):
    firing = page_alert(alertname="StillFiring")
    for index in range(22):
        page_alert(alertname=f"Resolved{index}", minutes_ago=120, resolved_minutes_ago=60 - index)
    page_alert(alertname="LongAgo", minutes_ago=3000, resolved_minutes_ago=2000)
    html = auth_client.get(URL).content.decode()
    resolved = html[html.index('id="resolved-heading"'):]
    assert f'id="alert-{firing.pk}"' not in resolved
    assert "Resolved 39 min ago, after 1 h" in resolved and "Resolved21" in resolved
    assert resolved.count('class="alert-item alert-item-resolved"') == 20
    assert "LongAgo" not in html
    assert 'href="/alerts/?resolved=all#resolved-heading">Show more resolved alerts' in resolved
    everything = auth_client.get(URL, {"resolved": "all"}).content.decode()
    assert everything.count('class="alert-item alert-item-resolved"') == 22
    assert "Show more resolved alerts" not in everything


def test_the_poll_gets_only_the_list(auth_client):
    page_alert()
    full = auth_client.get(URL).content.decode()
    assert 'hx-get="/alerts/" hx-trigger="every 10s" hx-swap="innerHTML"' in full
    assert "js/alerts_page.js" in full
    partial = auth_client.get(URL, **POLL)
    body = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in body and 'id="firing-heading"' in body
    assert 'id="alerts-live"' not in body


def test_alert_text_is_inert(auth_client):
    group = page_group(labels={"team": XSS}, external_url="javascript:alert(1)")
    alert = page_alert(
        group=group, alertname="Evil<script>alert(1)</script>",
        labels={"pod": XSS, XSS: "key"},
        annotations={"summary": XSS, "description": "**bold** [link](javascript:alert(1))\n" + XSS},
        generator_url="javascript:alert(document.cookie)",
    )
    rank_runbooks(alert, (RunbookFactory(name="Runbook<img src=x onerror=alert(1)>"), 0.9))
    for response in (auth_client.get(URL), auth_client.get(URL, **POLL)):
        html = response.content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html and "<img src=x onerror" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
        assert "javascript:" not in html.replace("[link](javascript:alert(1))", "")
        # Markdown is shown as written.
        assert "**bold** [link](javascript:alert(1))" in html
        assert "Runbook&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_click_on_an_alert_card_is_tracked_against_its_presentation(auth_client, user):
    alert = page_alert()
    first, second = RunbookFactory(name="First"), RunbookFactory(name="Second")
    rank_runbooks(alert, (first, 0.9), (second, 0.85))
    auth_client.get(URL)
    log = AuditLog.objects.get()
    response = auth_client.post(
        "/api/ai-helper/track-choice",
        {"audit_log_id": str(log.pk), "source": "alert",
         "choice_data": {"solution_chosen_id": str(second.pk), "solution_chosen_type": "runbook",
                         "user_action": "clicked_link", "solution_chosen_rank": 2}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["rank"] == 2
    clicked = RunbookInteractionEvent.objects.get(event_type="clicked_link")
    assert (clicked.audit_log_id, clicked.runbook_id, clicked.rank, clicked.source) == (
        log.pk, second.pk, 2, "alert")
    click = AuditLog.objects.get().user_modifications["clicks"][0]
    assert (click["rank"], click["source"]) == (2, "alert")
    # The runbook page reached from the card records the view against the same presentation.
    auth_client.get(f"/runbooks/{second.pk}/", {"from": str(log.pk), "source": "alert"})
    viewed = RunbookInteractionEvent.objects.get(event_type="viewed_detail")
    assert (viewed.audit_log_id, viewed.rank, viewed.source) == (log.pk, 2, "alert")


def test_navigation_links_to_the_alerts_page(auth_client):
    html = auth_client.get("/runbooks/").content.decode()
    assert '<a href="/alerts/">Alerts</a>' in html
    assert '<a href="/alerts/" aria-current="page">Alerts</a>' in auth_client.get(URL).content.decode()


def _page_of(count: int) -> None:
    runbooks = [RunbookFactory(name=f"Runbook{index}", is_automated=index % 2 == 0) for index in range(4)]
    groups = [page_group(labels={"alertname": f"Alert{index}"}) for index in range(5)]
    for index in range(count):
        alert = page_alert(group=groups[index % 5], alertname=f"Alert{index % 5}", minutes_ago=index + 1)
        rank_runbooks(alert, *[(runbook, 0.9 - 0.1 * rank) for rank, runbook in enumerate(runbooks)])
    for index in range(count // 5):
        page_alert(minutes_ago=300, resolved_minutes_ago=index + 1)


def _queries(client, **headers) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(URL, **headers).status_code == 200
    return len(captured.captured_queries)


def test_the_page_costs_a_fixed_number_of_queries(auth_client):
    _page_of(5)
    auth_client.get(URL)  # the first view presents (and audits) each alert once
    small = _queries(auth_client, **POLL)
    _page_of(45)
    auth_client.get(URL)
    large = _queries(auth_client, **POLL)
    assert small == large, "the page's queries grow with the number of alerts"
    assert large <= 12
    assert _queries(auth_client) == large
