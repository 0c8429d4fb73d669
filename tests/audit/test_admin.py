"""The audit log admin: a list that fits, a detail page a person can read, and no way to change a row."""

import re

import pytest
from django.urls import reverse

from audit.details import ActionDetails, PresentedSolution
from audit.models import EventType
from audit.services.store import audit_log_create
from tests.audit.factories import interaction_event
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def answer(user):
    first, second = RunbookFactory(name="HostDiskFull", slug="t/disk"), RunbookFactory(name="Inodes", slug="t/ino")
    details = ActionDetails(
        solutions=(
            PresentedSolution(rank=1, id=str(first.pk), slug=first.slug, title=first.name, confidence=0.82),
            PresentedSolution(rank=2, id=str(second.pk), slug=second.slug, title=second.name, confidence=0.41),
        ),
        presentation_strategy="primary_plus_one",
        threshold=0.5,
    )
    log = audit_log_create(user=user, session=None, query="disk full", response="See below.", details=details,
                           degraded=True)
    interaction_event(audit_log=log, runbook=first, event_type=EventType.CLICKED_LINK)
    interaction_event(audit_log=log, runbook=first, event_type=EventType.VIEWED_DETAIL)
    return log, first, second


def test_the_list_has_a_short_degraded_column(client, staff_user, answer):
    client.force_login(staff_user)
    html = client.get(reverse("admin:audit_auditlog_changelist")).content.decode()
    assert re.search(r'<th scope="col" class="sortable column-degraded_flag[^"]*">.*?Degraded', html, re.S)
    assert 'class="field-degraded_flag"><img src="/static/admin/img/icon-yes.svg" alt="True">' in html
    assert "0 of 2" in html and "primary plus one" in html
    # Answers without an LLM provider are a filter choice in words, not an empty link (axe: link-name).
    assert '<a href="?llm_provider=-">None recorded</a>' in html
    assert "css/admin_a11y.css" in html  # every admin page: underlined breadcrumb links
    filtered = client.get(reverse("admin:audit_auditlog_changelist"), {"llm_provider": "-"})
    assert filtered.status_code == 200 and "0 of 2" in filtered.content.decode()


def test_the_detail_shows_solutions_with_their_events_and_pretty_json(client, staff_user, answer,
                                                                        django_assert_max_num_queries):
    log, first, second = answer
    client.force_login(staff_user)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("admin:audit_auditlog_change", args=[log.pk]))
    html = response.content.decode()
    table = html[html.index('<table class="audit-solutions">'):html.index("</table>", html.index("audit-solutions"))]
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", table, re.S)
    assert len(rows) == 2
    cells = [re.split(r"</td><td>", row) for row in rows]
    assert [c[0] for c in cells] == ["1", "2"]
    assert reverse("admin:runbooks_runbook_change", args=[first.pk]) in cells[0][1] and "HostDiskFull" in cells[0][1]
    assert [c[2] for c in cells] == ["82%", "41%"]
    assert [c[3] for c in cells] == ["yes", "below threshold"]
    assert "Presented" in cells[0][4] and "Clicked link" in cells[0][4] and "Viewed detail" in cells[0][4]
    assert "Clicked link" not in cells[1][4]
    assert "Recommended (threshold 50%)" in table
    # The stored JSON, indented, in a scrolling <pre> (static/css/audit_admin.css).
    assert '<pre class="audit-json" tabindex="0">{\n  &quot;conversation&quot;: {' in html  # keys sorted, indented
    assert "css/audit_admin.css" in html


def test_audit_logs_stay_read_only(client, staff_user, answer):
    log = answer[0]
    client.force_login(staff_user)
    url = reverse("admin:audit_auditlog_change", args=[log.pk])
    assert client.post(url, {"query": "changed"}).status_code == 403
    assert client.get(reverse("admin:audit_auditlog_add")).status_code == 403
    assert client.post(reverse("admin:audit_auditlog_delete", args=[log.pk]), {"post": "yes"}).status_code == 403
    log.refresh_from_db()
    assert log.query == "disk full"
