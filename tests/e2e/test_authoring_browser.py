"""The runbook editor in Chromium (issue 20, "Done when"): an owner creates a runbook with three steps,
reorders them by keyboard and by mouse, sees the live and the whole-page preview, saves, edits again and
reads the diff between the two versions; invalid input shows the message next to the field and loses
nothing typed. At a laptop's and a phone's width the editor fits without sideways scroll and has no
serious axe violation. AUTHORING_SCREENSHOTS=<dir> also writes PNGs of the editor there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.urls import reverse
from playwright.sync_api import expect

from runbooks.embeddings import get_embedder
from runbooks.models import Runbook
from runbooks.services import runbook_upsert
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_pages_browser import VIEWPORTS, _accessible, _fits, _log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, available_apps=settings.INSTALLED_APPS)]


@pytest.fixture
def owner(transactional_db):
    user = UserFactory(username="owner", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    # Saving re-embeds on commit inside the live server's request: load the model before the clock runs.
    get_embedder().embed_documents(["warm up"])
    return user


def _shot(page, name: str, *, parts: bool = False) -> None:
    """The whole page, and with ``parts`` each fieldset and the preview on its own (readable at phone width)."""
    folder = os.environ.get("AUTHORING_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True, animations="disabled")
    if parts:
        for index, part in enumerate(page.locator("fieldset, #page-preview").all()):
            part.screenshot(path=str(Path(folder) / f"{name}-part{index}.png"), animations="disabled")


def _titles(page) -> list[str]:
    return page.locator('[data-step-list] input[name="step_title"]').evaluate_all("els => els.map(e => e.value)")


def _row(page, number: int):
    return page.locator("[data-step-row]").nth(number - 1)


def test_owner_writes_reorders_previews_saves_edits_and_reads_the_diff(live_server, page, owner):
    base = live_server.url
    _log_in(page, base, "owner")
    page.goto(f"{base}/admin/runbooks/runbook/add/")  # the admin's "Add runbook" opens the editor
    expect(page.get_by_role("heading", name="New runbook")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("NodeDiskFull")
    page.get_by_label("Address (slug)").fill("node/disk-full")
    page.get_by_label("What the alert means").fill("A node's root filesystem is almost full.")

    _row(page, 1).get_by_label("Title").fill("Check usage")
    _row(page, 1).get_by_label("Command").fill("df -h /")
    page.get_by_role("button", name="+ Add a step").click()
    expect(_row(page, 2).get_by_label("Title")).to_be_focused()
    page.keyboard.type("Find the largest directories")
    _row(page, 2).get_by_label("Command").fill("du -xh / | sort -h | tail")
    page.get_by_role("button", name="+ Add a step").click()
    page.keyboard.type("Prune unused images")
    _row(page, 3).get_by_label("Detail").fill("Only images no container uses.")
    assert _titles(page) == ["Check usage", "Find the largest directories", "Prune unused images"]

    # Keyboard: step 3 up, with Enter on its button; focus stays on the moved step's button.
    page.get_by_role("button", name="Move step 3 up").focus()
    page.keyboard.press("Enter")
    assert _titles(page) == ["Check usage", "Prune unused images", "Find the largest directories"]
    expect(page.get_by_role("button", name="Move step 2 up")).to_be_focused()
    # Mouse: drag step 2 by its handle onto the top half of step 1.
    _row(page, 1).evaluate("row => row.scrollIntoView({block: 'start'})")
    _row(page, 2).locator("[data-drag-handle]").hover()
    page.mouse.down()
    target = _row(page, 1).bounding_box()
    for offset in (40, 20, 10):  # HTML5 drag needs several moves before dragover fires
        page.mouse.move(target["x"] + 200, target["y"] + offset, steps=4)
    page.mouse.up()
    assert _titles(page) == ["Prune unused images", "Check usage", "Find the largest directories"]
    expect(_row(page, 1).locator("[data-step-number]")).to_have_text("1")

    # Live preview of the Markdown through the server's sanitising renderer.
    page.get_by_label("More from the runbook (Markdown)").fill("## Notes\n\nCall **storage** <b>now</b>.")
    expect(page.locator("#body-preview strong")).to_have_text("storage")
    expect(page.locator("#body-preview")).to_contain_text("<b>now</b>")  # raw HTML shown as text, not run

    # The whole page as the engineer sees it: nothing saved, everything kept.
    page.get_by_role("button", name="Preview as the engineer sees it").click()
    preview = page.locator("#page-preview")
    expect(preview).to_contain_text("the runbook page as the engineer sees it (not saved)")
    assert preview.locator(".steps .step-title").all_inner_texts() == [
        "Prune unused images",
        "Check usage",
        "Find the largest directories",
    ]
    expect(preview.locator("pre.command").first).to_have_text("df -h /")
    assert not Runbook.objects.exists()
    assert _titles(page) == ["Prune unused images", "Check usage", "Find the largest directories"]
    _shot(page, "authoring-preview-1200")

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Saved as version 1.")).to_be_visible()
    runbook = Runbook.objects.get(slug="node/disk-full")
    assert [step["title"] for step in runbook.steps] == [
        "Prune unused images",
        "Check usage",
        "Find the largest directories",
    ]

    # Edit again: rename a step, move one, save, then read the diff between the two versions.
    _row(page, 2).get_by_label("Title").fill("Check usage of the root filesystem")
    page.get_by_role("button", name="Move step 1 down").click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Saved as version 2.")).to_be_visible()
    page.get_by_role("link", name="See what changed").click()
    expect(page.get_by_role("heading", name="What changed from version 1 to version 2")).to_be_visible()
    changes = page.locator(".rb-step-changes").inner_text()
    assert "Check usage of the root filesystem" in changes and "Check usage → Check usage of the root" in changes
    expect(page.locator(".rb-meta").first).to_contain_text("by owner via runbook editor")
    _fits(page, "version diff")
    _shot(page, "authoring-diff-1200")
    assert page.console_errors == []


def test_invalid_input_shows_the_message_by_the_field_and_loses_nothing(live_server, page, owner):
    base = live_server.url
    _log_in(page, base, "owner")
    page.goto(f"{base}/runbooks/new/")
    page.get_by_label("Address (slug)").fill("Node Disk Full!")
    page.get_by_label("What the alert means").fill("Typed before the mistake.")
    _row(page, 1).get_by_label("Command").fill("df -h /")  # a step with a command but no title
    page.get_by_role("button", name="+ Add a step").click()
    page.keyboard.type("Second step")
    page.get_by_label("Review every (days)").fill("0")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator("#form-errors")).to_be_focused()
    name_field = page.locator(".field", has=page.locator("#id_name"))
    expect(name_field.locator(".field-error")).to_have_text("Give the runbook a name: the alert it answers.")
    expect(page.locator(".field", has=page.locator("#id_slug")).locator(".field-error")).to_contain_text(
        "Use lower-case letters"
    )
    step_title = _row(page, 1).locator(".field", has=page.locator('input[name="step_title"]'))
    expect(step_title.locator(".field-error")).to_have_text(
        "Give step 1 a title: what the engineer does, in a few words."
    )
    expect(_row(page, 1).get_by_label("Title")).to_have_attribute("aria-invalid", "true")
    # Nothing typed is lost.
    expect(page.get_by_label("Address (slug)")).to_have_value("Node Disk Full!")
    expect(page.get_by_label("What the alert means")).to_have_value("Typed before the mistake.")
    expect(_row(page, 1).get_by_label("Command")).to_have_value("df -h /")
    expect(_row(page, 2).get_by_label("Title")).to_have_value("Second step")
    expect(page.get_by_label("Review every (days)")).to_have_value("0")
    review = page.locator(".field", has=page.locator("#id_review_interval_days"))
    expect(review.locator(".field-error")).to_have_text(
        "The review interval is at least 1 day (leave it empty for no reviews)."
    )
    assert not Runbook.objects.exists()


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_the_editor_fits_and_is_accessible(live_server, browser, owner, width):
    context = browser.new_context(viewport=VIEWPORTS[width])
    page = context.new_page()
    page.set_default_timeout(15000)
    base = live_server.url
    _log_in(page, base, "owner")
    page.goto(f"{base}/runbooks/new/")
    page.get_by_label("More from the runbook (Markdown)").fill("## Notes\n\n```\n" + "kubectl get pods " * 12 + "\n```")
    expect(page.locator("#body-preview pre")).to_be_visible()
    page.get_by_role("button", name="Save", exact=True).click()  # empty name: the messages are shown too
    expect(page.locator("#form-errors")).to_be_visible()
    _fits(page, f"editor with errors at {width}")
    _accessible(page, Axe(), f"editor at {width}")
    _shot(page, f"authoring-editor-{width}", parts=width == "phone")
    page.get_by_role("button", name="Preview as the engineer sees it").click()
    expect(page.locator("#page-preview")).to_be_visible()
    _fits(page, f"editor preview at {width}")
    _shot(page, f"authoring-preview-{width}", parts=width == "phone")

    # The history page the editor links to, with a long command changed, fits too.
    step = {"title": "Look at the pods", "detail": "", "command": "kubectl get pods " * 12}
    runbook, _ = runbook_upsert(slug="node/wide", data={"name": "NodeWideCommand", "steps": [step]})
    runbook_upsert(slug="node/wide", data={"steps": [{**step, "command": "kubectl get pods -A " * 12}, step]})
    page.goto(f"{base}{reverse('admin:runbooks_runbook_version', args=[runbook.pk, 2])}")
    expect(page.get_by_role("heading", name="What changed from version 1 to version 2")).to_be_visible()
    _fits(page, f"version diff at {width}")
    _shot(page, f"authoring-diff-{width}")
    # The admin pages this issue changed: the list (state, origin, owners, review) and the change form.
    page.goto(f"{base}{reverse('admin:runbooks_runbook_changelist')}")
    expect(page.locator("#result_list")).to_contain_text("NodeWideCommand")
    _fits(page, f"runbook list at {width}")
    _shot(page, f"authoring-admin-list-{width}")
    page.goto(f"{base}{reverse('admin:runbooks_runbook_change', args=[runbook.pk])}")
    expect(page.get_by_role("link", name="Edit in the runbook editor")).to_be_visible()
    _fits(page, f"runbook change form at {width}")
    _shot(page, f"authoring-admin-change-{width}")
    context.close()
