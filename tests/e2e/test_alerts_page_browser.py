"""The alerts page in Chromium (docs/alerts.md, "Where engineers see it"): an alert's recommended runbooks are
shown, a click on a card is recorded against the alert's presentation with source alert, and the page fits a
laptop and a phone without sideways scroll or serious accessibility problems. ALERTS_SCREENSHOTS=<folder>
saves alerts-1366.png and alerts-390.png there (docs/screenshots/)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings

from alerts.models import RecommendationEvidence
from audit.models import AuditLog, RunbookInteractionEvent
from tests.alerts.page_rows import page_alert, page_group, rank_runbooks
from tests.e2e.conftest import PASSWORD
from tests.factories import GroupFactory, UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)]

VIEWPORTS = {"1366": {"width": 1366, "height": 900}, "390": {"width": 390, "height": 844}}


def _wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


@pytest.fixture
def incident(transactional_db):  # noqa: F811 - the pytest-django fixture
    """What an on-call engineer sees during an incident: two Alertmanager groups firing, one alert still being
    ranked, two resolved this morning."""
    dba = GroupFactory(name="dba")
    crash = RunbookFactory(slug="kubernetes/kube-pod-crash-looping", name="KubePodCrashLooping",
                           description="A pod restarts again and again.")
    oom = RunbookFactory(slug="kubernetes/kube-pod-oom-killed", name="KubePodOOMKilled", is_automated=True,
                         description="A container is killed for using more memory than its limit.")
    disk = RunbookFactory(slug="node/node-filesystem-space-filling-up", name="NodeFilesystemSpaceFillingUp",
                          description="A node's filesystem is predicted to run out of space.")
    RunbookFactory(slug="dba/postgres-failover", name="PostgresFailover", allowed_groups=[dba])
    shop = page_group(labels={"alertname": "KubePodCrashLooping", "namespace": "shop"},
                      external_url="https://alertmanager.example.com/#/alerts?receiver=oncall")
    first = page_alert(
        group=shop, minutes_ago=12, labels={"namespace": "shop", "pod": "cart-7d9f8b6c5d-x2k9p", "container": "cart"},
        annotations={"description": "Pod shop/cart-7d9f8b6c5d-x2k9p (cart) is restarting 3.5 times / 10 minutes.",
                     "runbook_url": "https://runbooks.example.com/kubernetes/kube-pod-crash-looping"},
        generator_url="https://prometheus.example.com/graph?g0.expr=kube_pod_container_status_restarts_total",
    )
    rank_runbooks(first, (crash, 0.99, RecommendationEvidence.LINKED), (oom, 0.62))
    second = page_alert(group=shop, minutes_ago=4, labels={"namespace": "shop", "pod": "checkout-5c4d9b7f6-q8w2e"},
                        annotations={"description": "Pod shop/checkout-5c4d9b7f6-q8w2e is restarting."})
    rank_runbooks(second, (crash, 0.91), (oom, 0.55))
    nodes = page_group(labels={"alertname": "NodeFilesystemSpaceFillingUp"})
    full = page_alert(group=nodes, alertname="NodeFilesystemSpaceFillingUp", minutes_ago=47,
                      labels={"severity": "warning", "instance": "10.0.3.17:9100", "mountpoint": "/var/lib/docker"},
                      annotations={"summary": "Filesystem is predicted to run out of space within the next 24 hours.",
                                   "description": "Filesystem on /dev/nvme0n1p1 at 10.0.3.17:9100 has only 9.3% "
                                                  "available space left and is filling up."})
    rank_runbooks(full, (disk, 0.88))
    page_alert(group=page_group(labels={"alertname": "TargetDown", "job": "node-exporter"}), alertname="TargetDown",
               minutes_ago=1, state="pending",
               labels={"severity": "warning", "job": "node-exporter"},
               annotations={"summary": "10% of the node-exporter targets are down."})
    page_alert(alertname="KubeJobFailed", minutes_ago=180, resolved_minutes_ago=95, labels={"severity": "warning"})
    page_alert(alertname="CPUThrottlingHigh", minutes_ago=300, resolved_minutes_ago=240, labels={"severity": "info"})
    UserFactory(username="oncall", password=PASSWORD)
    return {"first": first, "crash": crash, "oom": oom}


def test_a_click_on_an_alert_card_is_recorded_with_source_alert(live_server, login, incident):
    page = login("oncall")
    page.get_by_role("link", name="Alerts").click()
    page.wait_for_url("**/alerts/")
    alert = incident["first"]
    section = page.locator(f"#alert-{alert.pk} .alert-runbooks")
    links = section.locator("a.runbook-link")
    assert links.all_inner_texts() == ["1. KubePodCrashLooping", "2. KubePodOOMKilled"]
    assert "Linked by the alert rule" in section.inner_text()
    log = AuditLog.objects.get(alert_presentation__alert=alert)
    assert section.get_attribute("data-audit-log-id") == str(log.pk)

    # The poll's swap keeps an opened "Labels" open (and brings the new list in).
    page.locator(f"#labels-{alert.pk} > summary").click()
    page.evaluate("() => { document.querySelector('.alerts-section').dataset.old = '1'; }")
    page.evaluate("() => window.htmx.ajax('GET', window.location.pathname, {source: '#alerts-live', "
                  "target: '#alerts-live', swap: 'innerHTML'})")
    page.wait_for_function("() => !document.querySelector('.alerts-section').dataset.old")
    assert page.locator(f"#labels-{alert.pk}").evaluate("el => el.open")
    assert page.locator("#alerts-live").count() == 1 and page.locator("h1").count() == 1  # only the list came
    assert page.locator(f"#labels-{alert.pk} dd").first.is_visible()

    oom = incident["oom"]
    links = page.locator(f"#alert-{alert.pk} .alert-runbooks a.runbook-link")
    links.nth(1).click()
    page.wait_for_url(f"**/runbooks/{oom.pk}/?from={log.pk}&source=alert")
    clicks = _wait_for(lambda: AuditLog.objects.get(pk=log.pk).user_modifications.get("clicks"))
    assert len(clicks) == 1
    assert (clicks[0]["solution_chosen_id"], clicks[0]["rank"], clicks[0]["source"]) == (str(oom.pk), 2, "alert")
    clicked = RunbookInteractionEvent.objects.get(event_type="clicked_link")
    assert (clicked.audit_log_id, clicked.runbook_id, clicked.rank, clicked.source) == (log.pk, oom.pk, 2, "alert")
    viewed = _wait_for(lambda: RunbookInteractionEvent.objects.filter(event_type="viewed_detail").first())
    assert (viewed.audit_log_id, viewed.rank, viewed.source) == (log.pk, 2, "alert")
    assert page.console_errors == [], "\n".join(page.console_errors)


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_the_alerts_page_fits_laptop_and_phone(live_server, browser, incident, width):
    context = browser.new_context(viewport=VIEWPORTS[width])
    page = context.new_page()
    page.set_default_timeout(15000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    try:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("oncall")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/chat/")
        page.goto(f"{live_server.url}/alerts/")
        page.get_by_text("Finding runbooks…").wait_for()
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px viewport"
        violations = [
            f"{v['id']} ({v['impact']}): {v['help']}"
            for v in Axe().run(page).response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert violations == []
        folder = os.environ.get("ALERTS_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"alerts-{width}.png"), full_page=True, animations="disabled")
        assert errors == []
    finally:
        page.wait_for_load_state("networkidle")
        context.close()
