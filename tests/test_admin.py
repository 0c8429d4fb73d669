import re

import pytest
from django.urls import reverse

from audit.services.store import EventInput, interaction_event_record
from tests.audit.factories import AuditLogFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "admin:runbooks_runbook_changelist",
    "admin:runbooks_runbookexecution_changelist",
    "admin:aihelper_chatsession_changelist",
    "admin:aihelper_chatmessage_changelist",
    "admin:audit_auditlog_changelist",
    "admin:audit_interactioneventrow_changelist",
]


@pytest.fixture
def populated(user):
    runbook = RunbookFactory()
    audit_log = AuditLogFactory(user=user, query="disk full", presented=[runbook])
    interaction_event_record(event=EventInput(runbook_id=runbook.pk, event_type="clicked_link", rank=1))
    return runbook, audit_log


@pytest.mark.parametrize("name", CHANGELISTS)
def test_admin_changelists_answer_200_for_staff(client, staff_user, populated, name):
    client.force_login(staff_user)
    response = client.get(reverse(name))
    assert response.status_code == 200


@pytest.mark.parametrize("name", CHANGELISTS)
def test_admin_redirects_anonymous_users_to_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def _embedding_cells(html: str) -> dict[str, str]:
    """{runbook name: its embedding_state cell} from the changelist rows."""
    cells = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.DOTALL):
        name = re.search(r'class="field-name[^"]*"[^>]*>(?:<a [^>]*>)?([^<]+)', row)
        state = re.search(r'<td class="field-embedding_state[^"]*">([^<]*)</td>', row)
        if name and state:
            cells[name.group(1).strip()] = state.group(1).strip()
    return cells


def test_runbook_admin_shows_embedding_status(client, staff_user):
    """Each row says whether its runbook is searchable by meaning: never embedded, embedded from its current
    text, or embedded from text that has changed since."""
    from runbooks.models import Runbook
    from runbooks.services import runbooks_embed

    missing = RunbookFactory(name="NeverEmbedded")
    current = RunbookFactory(name="EmbeddedAndCurrent")
    stale = RunbookFactory(name="EmbeddedThenEdited")
    runbooks_embed(runbook_ids=[current.pk, stale.pk])
    Runbook.objects.filter(pk=stale.pk).update(description="rewritten after the embedding")  # no re-embed
    client.force_login(staff_user)
    response = client.get(reverse("admin:runbooks_runbook_changelist"))
    assert response.status_code == 200
    cells = _embedding_cells(response.content.decode())
    assert cells[missing.name] == "missing"
    assert cells[current.name] == "current"
    assert cells[stale.name] == "stale"


def test_audit_log_and_events_are_read_only_in_admin(client, staff_user, populated):
    runbook, audit_log = populated
    client.force_login(staff_user)
    page = client.get(reverse("admin:audit_auditlog_change", args=[audit_log.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.get(reverse("admin:audit_auditlog_add")).status_code == 403
    assert client.post(reverse("admin:audit_auditlog_delete", args=[audit_log.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:audit_interactioneventrow_add")).status_code == 403


def test_runbook_detail_in_admin_for_staff(client, staff_user, populated):
    runbook, _ = populated
    client.force_login(staff_user)
    assert client.get(reverse("admin:runbooks_runbook_change", args=[runbook.pk])).status_code == 200
