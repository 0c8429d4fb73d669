"""The incident path at a laptop's and a phone's width (issue #15): every page fits without sideways
scroll, has no serious or critical axe violation, and the chat, runbook and execution pages do what a
tired engineer needs (the last card's buttons in view, names broken only between words, a confirmation
before finishing with unticked steps)."""

from __future__ import annotations

import re
import time

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from playwright.sync_api import expect

from tests.e2e.conftest import CHROMIUM, PASSWORD
from tests.factories import GroupFactory, UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)]

VIEWPORTS = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
LONG_COMMAND = (
    "kubectl -n monitoring get persistentvolumeclaims -o custom-columns=NAME:.metadata.name,"
    "CAPACITY:.status.capacity.storage,CLASS:.spec.storageClassName --sort-by=.status.capacity.storage"
)
STEPS = [
    {"title": "Find the volume that is filling up", "detail": "Compare the usage with the capacity.",
     "command": LONG_COMMAND},
    {"title": "Delete old data or expand the volume", "detail": "", "command": "kubectl edit pvc data-0"},
    {"title": "Check the alert resolves", "detail": "", "command": "kubectl get pvc"},
]
IMPACTS = ("serious", "critical")

# Every line break inside a title must fall at a space, a separator or a <wbr>: never inside a word.
TITLE_BREAKS = """(selector) => {
  const bad = [];
  for (const el of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let previousTop = null, previousChar = " ", node;
    while ((node = walker.nextNode())) {
      const afterWbr = node.previousSibling && node.previousSibling.nodeName === "WBR";
      for (let i = 0; i < node.data.length; i++) {
        const ch = node.data[i];
        if (/\\s/.test(ch)) { previousChar = ch; continue; }
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rects = range.getClientRects();
        if (!rects.length) continue;
        const top = rects[0].top;
        if (previousTop !== null && top > previousTop + 2) {
          const allowed = /\\s|[-_/.:]/.test(previousChar) || (i === 0 && afterWbr);
          if (!allowed) bad.push(el.textContent.trim() + " | breaks before: " + node.data.slice(i));
        }
        previousTop = top;
        previousChar = ch;
      }
    }
  }
  return bad;
}"""

# In the viewport, and the element itself is what a tap at its centre reaches (nothing covers it).
UNCOVERED = """(el) => {
  const r = el.getBoundingClientRect();
  const inside = r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth;
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return inside && (hit === el || el.contains(hit));
}"""


# Elements of the top bar and the page that the given element's box overlaps.
OVERLAPS = """(selector) => {
  const r = document.querySelector(selector).getBoundingClientRect();
  return [...document.querySelectorAll(".topbar a, .topbar button, main h1")].filter(other => {
    const o = other.getBoundingClientRect();
    return o.left < r.right && r.left < o.right && o.top < r.bottom && r.top < o.bottom;
  }).map(other => other.textContent.trim());
}"""


@pytest.fixture(scope="module")
def axe():
    return Axe()


@pytest.fixture
def incident(transactional_db, settings):  # noqa: F811 - the pytest-django fixture
    from runbooks.services import runbooks_embed

    settings.AIHELPER_CONFIDENCE_THRESHOLD = 0.0
    settings.LLM_PROVIDER = "offline"
    sre = GroupFactory(name="sre")
    volume = RunbookFactory(
        slug="e2e/kube-persistent-volume-filling-up", name="KubePersistentVolumeFillingUpPredicted",
        description="A persistent volume claim in the cluster is predicted to fill up within four days.",
        tags=["kubernetes", "storage", "disk"], steps=STEPS,
        body_markdown="## Background\n\nPrometheus predicts the volume fills up.\n\n```\n" + LONG_COMMAND + "\n```\n",
    )
    automated = RunbookFactory(
        slug="e2e/kube-pod-crash-looping", name="KubePodCrashLooping", is_automated=True,
        description="A pod in the cluster restarts again and again; its disk volume may be full.",
        tags=["kubernetes", "pods", "disk"],
    )
    grouped = RunbookFactory(
        slug="e2e/node-filesystem-space-filling-up", name="NodeFilesystemSpaceFillingUp", is_automated=True,
        description="A node filesystem is predicted to run out of space: disk almost full.",
        tags=["node", "disk"], allowed_groups=[sre],
    )
    RunbookFactory(slug="e2e/unrelated", name="CertificateExpiresSoon", description="TLS certificate expiry.")
    runbooks_embed()
    user = UserFactory(username="alice")
    user.groups.add(sre)
    return {"volume": volume, "automated": automated, "grouped": grouped}


@pytest.fixture(params=list(VIEWPORTS))
def sized_page(request, browser, transactional_db):
    context = browser.new_context(viewport=VIEWPORTS[request.param])
    page = context.new_page()
    page.set_default_timeout(15000)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and page.errors.append(msg.text))
    yield page
    page.wait_for_load_state("networkidle")
    context.close()


def _eventually(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def _fits(page, name):
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"{name}: the page is {widths[0]} px wide in a {widths[1]} px viewport"


def _accessible(page, axe, name):
    results = axe.run(page)
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[node['target'] for node in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v["impact"] in IMPACTS
    ]
    assert serious == [], f"{name}: " + "\n".join(serious)


def _check(page, axe, name):
    _fits(page, name)
    _accessible(page, axe, name)


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/chat/")


def test_the_incident_path_fits_reads_and_is_accessible(live_server, sized_page, incident, axe):
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is missing")
    page, base = sized_page, live_server.url
    phone = page.viewport_size["width"] < 500

    page.goto(f"{base}/accounts/login/")
    _check(page, axe, "login")
    _log_in(page, base, "alice")

    # Chat: no floating helper on the chat page itself; Send fully visible; sessions reachable.
    assert page.locator("#agent-widget").count() == 0
    assert page.get_by_role("button", name="Send").evaluate(UNCOVERED)
    _check(page, axe, "chat (empty)")
    page.get_by_label("Your message").fill("the disk of a persistent volume is filling up and pods crash")
    page.get_by_role("button", name="Send").click()
    answer = page.locator("#chat-messages .msg-assistant:not(.msg-pending)").last
    answer.wait_for()
    expect(page.locator("#chat-title")).not_to_have_text("New chat")  # the session's title
    last_card = answer.locator(".runbook-card").last
    buttons = last_card.locator(".feedback-button").all()
    assert len(buttons) == 2  # Fits / Does not fit
    for button in buttons:
        assert button.evaluate(UNCOVERED), f"{button.inner_text()} is hidden or covered after the answer"
    assert last_card.locator(".tag").evaluate(UNCOVERED)
    assert page.evaluate(TITLE_BREAKS, ".card-title") == []
    assert re.fullmatch(r"\d+%|under 1%", answer.locator(".card-facts dd").first.inner_text().strip())
    _check(page, axe, "chat (answered)")
    page.emulate_media(color_scheme="dark")  # the OS's dark mode must meet the same contrast
    _accessible(page, axe, "chat (answered, dark)")
    page.emulate_media(color_scheme="light")
    if phone:
        page.get_by_text("Sessions", exact=True).click()
        assert page.locator("#session-list a").first.is_visible()
        page.get_by_text("Sessions", exact=True).click()

    # Reopening the session starts at its latest message.
    page.reload()
    page.locator("#chat-messages .msg-assistant").last.wait_for()
    at_end = "m => m.scrollTop + m.clientHeight >= m.scrollHeight - 2"
    assert _eventually(lambda: page.locator("#chat-messages").evaluate(at_end)), "not opened at the latest message"

    # Runbook page: long commands scroll inside their box, each has a copy button, the rule is in words.
    page.goto(f"{base}/runbooks/{incident['volume'].pk}/")
    assert page.evaluate(TITLE_BREAKS, "h1") == []
    assert page.get_by_role("button", name="Copy command").count() == 4
    pre = page.locator("pre").first
    assert pre.evaluate("el => el.scrollWidth > el.clientWidth && getComputedStyle(el).overflowX === 'auto'")
    assert "Anyone who can see this runbook may run it." in page.inner_text("main")
    _check(page, axe, "runbook")
    page.emulate_media(color_scheme="dark")
    _accessible(page, axe, "runbook (dark)")
    page.emulate_media(color_scheme="light")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    toggle = page.get_by_role("button", name="Ask the runbook helper")
    if phone:  # in the top bar's free corner, next to (not over) the brand and the links
        page.evaluate("window.scrollTo(0, 0)")
        assert page.evaluate(OVERLAPS, "#agent-widget-toggle") == []
    else:  # floating, with room kept at the end of the page
        box, content = toggle.bounding_box(), page.locator("main > *").last.bounding_box()
        assert content["y"] + content["height"] <= box["y"], "the helper button covers the end of the page"
    toggle.click()  # the helper opens inside the viewport, and Escape closes it
    assert page.locator("#agent-widget-panel").evaluate(
        "el => { const r = el.getBoundingClientRect(); return r.left >= 0 && r.top >= 0 && "
        "r.right <= innerWidth && r.bottom <= innerHeight; }"
    )
    _fits(page, "runbook with the helper open")
    page.keyboard.press("Escape")
    assert page.locator("#agent-widget-panel").is_hidden()
    page.goto(f"{base}/runbooks/{incident['automated'].pk}/")
    assert "Restricted: only staff may run this automated runbook." in page.inner_text("main")
    page.goto(f"{base}/runbooks/{incident['volume'].pk}/")

    # Execution: progress, a confirmation naming the unticked steps, a note asked for on failure.
    page.get_by_role("button", name="Start execution").click()
    page.wait_for_url("**/executions/**")
    page.get_by_role("button", name="Mark step 1 done").click()
    page.get_by_role("button", name="Mark step 1 not done").wait_for()
    assert "1 of 3 steps done" in page.inner_text("#checklist")
    _check(page, axe, "execution")
    page.get_by_role("button", name="Finish: it worked").click()
    dialog = page.locator("#finish-dialog")
    dialog.wait_for()
    text = dialog.inner_text()
    assert "2 steps are not ticked" in text and "Step 2: Delete old data" in text and "Step 3: Check the alert" in text
    _fits(page, "execution confirm")
    page.get_by_role("button", name="Go back").click()
    assert not dialog.is_visible()
    page.get_by_role("button", name="Finish: it did not work").click()
    dialog.wait_for()
    page.get_by_label("What did not work?").fill("The volume cannot be expanded: storage class is fixed.")
    page.get_by_role("button", name="Finish: it did not work").last.click()
    page.locator(".execution-status[data-status='failed']").wait_for()
    assert "storage class is fixed" in page.inner_text("main")
    back = page.get_by_role("link", name="Back to the runbook").first
    assert back.get_attribute("href") == f"/runbooks/{incident['volume'].pk}/"
    _fits(page, "execution finished")

    # Search: confidences as percentages, recommended apart from the other matches, no empty bars.
    page.goto(f"{base}/runbooks/?q=persistent+volume+disk+filling+up")
    page.get_by_role("heading", name="Recommended").wait_for()
    assert not re.search(r"\b0\.\d\d\b", page.inner_text("#results"))
    assert page.locator(".result:not(.recommended) meter").count() == 0
    assert page.evaluate(TITLE_BREAKS, ".result .runbook-title") == []
    _check(page, axe, "search")

    assert page.errors == [], page.errors
    page.goto(f"{base}/runbooks/00000000-0000-4000-8000-000000000000/")  # a 404 by design
    assert page.get_by_role("heading", name="Runbook not found").count() == 1
    _check(page, axe, "runbook not found")


def test_the_analytics_dashboard_fits_and_is_accessible(live_server, sized_page, axe):
    """The dashboard uses the same colours (app.css custom properties) and must be as accessible."""
    UserFactory(username="root", is_staff=True, is_superuser=True)
    _log_in(sized_page, live_server.url, "root")
    sized_page.goto(f"{live_server.url}/admin/analytics/dashboard/")
    _check(sized_page, axe, "analytics dashboard")
