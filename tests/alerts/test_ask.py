""" "Ask about this alert" through HTTP: the session it opens, the seeded exchange, the first question
answered about the alert's runbooks (offline provider, embedded library), reuse, RBAC and refusals."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from aihelper.chat.models import ChatMessage, MessageRole
from alerts.ask import NO_RUNBOOKS, PENDING
from alerts.models import AlertPresentation, AlertSession, RecommendationState
from audit.models import AuditLog, EventSource, RunbookInteractionEvent
from runbooks.services import runbooks_embed
from tests.aihelper.conftest import DBA_GROUP, LIBRARY, RESTRICTED
from tests.alerts.outcome_rows import alert_presentation, recommended_alert
from tests.factories import GroupFactory, UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db

QUERY = "/api/ai-helper/query"


@pytest.fixture
def runbooks(db):
    """The chat tests' embedded library: three runbooks for everyone, one restricted to the dba group."""
    library = {data["slug"]: RunbookFactory(**data) for data in LIBRARY}
    library[RESTRICTED["slug"]] = RunbookFactory(**RESTRICTED, allowed_groups=[GroupFactory(name=DBA_GROUP)])
    runbooks_embed()
    return library


@pytest.fixture
def offline(settings):
    settings.LLM_PROVIDER = "offline"
    settings.ANTHROPIC_API_KEY = ""


@pytest.fixture
def lag_alert(runbooks):
    """Replication lag: the lag runbook first, the disk runbook second."""
    return recommended_alert(
        runbooks=[runbooks["test/postgres-replication-lag"], runbooks["test/node-disk-full"]],
        confidences=[0.92, 0.41],
    )


def ask(client, alert_id):
    return client.post(reverse("alerts:ask", args=[alert_id]))


def session_id_of(response) -> str:
    assert response.status_code == 302, response.content
    prefix = "/chat/"
    assert response["Location"].startswith(prefix)
    return response["Location"].removeprefix(prefix).strip("/")


def test_ask_opens_a_session_seeded_with_the_alert_and_its_runbooks(auth_client, user, lag_alert, runbooks):
    session_id = session_id_of(ask(auth_client, lag_alert.pk))
    link = AlertSession.objects.get(alert=lag_alert)
    assert str(link.session_id) == session_id and link.session.user == user
    assert link.session.title == "Alert: PostgresReplicationLag"
    question, answer = ChatMessage.objects.filter(session_id=session_id).order_by("created_at", "id")
    assert question.role == MessageRole.USER and answer.role == MessageRole.ASSISTANT
    assert "About the alert PostgresReplicationLag (firing since" in question.content
    assert "Replica db-2 is 15 minutes behind the primary." in question.content
    lag, disk = runbooks["test/postgres-replication-lag"], runbooks["test/node-disk-full"]
    assert f"1. [PostgresReplicationLag](/runbooks/{lag.pk}/) (92 % match)" in answer.content
    assert f"2. [NodeDiskFull](/runbooks/{disk.pk}/) (41 % match)" in answer.content
    # The presentation the alert page would have written: source "alert", one presented event per runbook.
    presentation = AlertPresentation.objects.get(alert=lag_alert, user=user)
    assert question.audit_log_id == answer.audit_log_id == presentation.audit_log_id
    log = presentation.audit_log
    assert (log.source, log.session_id, log.query) == (EventSource.ALERT, None, lag_alert.recommendation_query)
    events = RunbookInteractionEvent.objects.filter(audit_log=log).order_by("rank")
    assert [(e.event_type, e.runbook_id, e.rank, e.source) for e in events] == [
        ("presented", lag.pk, 1, "alert"),
        ("presented", disk.pk, 2, "alert"),
    ]


def test_the_first_question_is_answered_about_the_alerts_top_runbook(auth_client, lag_alert, runbooks, offline):
    session_id = session_id_of(ask(auth_client, lag_alert.pk))
    response = auth_client.post(
        QUERY, {"message": "how do I fix it quickly?", "session_id": session_id}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["session_id"] == session_id
    assert body["solutions"], body
    assert body["solutions"][0]["id"] == str(runbooks["test/postgres-replication-lag"].pk)
    assert body["conversation"]["kind"] in {"follow_up", "continuation", "reference"}
    # The answer is a new chat turn of the session (source of the chat API), after the seeded exchange.
    assert ChatMessage.objects.filter(session_id=session_id).count() == 4
    assert AuditLog.objects.get(pk=body["audit_log_id"]).session_id is not None


def test_without_the_seed_the_same_question_finds_nothing_about_the_alert(auth_client, lag_alert, runbooks, offline):
    """The control: the runbook comes from the alert, not from the question's words."""
    response = auth_client.post(QUERY, {"message": "how do I fix it quickly?"}, content_type="application/json")
    solutions = response.json()["solutions"]
    assert not solutions or solutions[0]["id"] != str(runbooks["test/postgres-replication-lag"].pk)


def test_the_chat_page_shows_the_seeded_runbooks_as_tracked_links(auth_client, lag_alert, runbooks):
    session_id = session_id_of(ask(auth_client, lag_alert.pk))
    page = auth_client.get(f"/chat/{session_id}/")
    assert page.status_code == 200
    log_id = AlertPresentation.objects.get(alert=lag_alert).audit_log_id
    assert f"/runbooks/{runbooks['test/postgres-replication-lag'].pk}/?from={log_id}" in page.content.decode()


def test_asking_again_reopens_the_same_session(auth_client, user, lag_alert):
    first = session_id_of(ask(auth_client, lag_alert.pk))
    second = session_id_of(ask(auth_client, lag_alert.pk))
    assert first == second
    assert AlertSession.objects.filter(alert=lag_alert).count() == 1
    assert AlertPresentation.objects.filter(alert=lag_alert).count() == 1
    assert ChatMessage.objects.filter(session_id=first).count() == 2


def test_each_user_gets_their_own_session(client, auth_client, lag_alert):
    mine = session_id_of(ask(auth_client, lag_alert.pk))
    client.force_login(UserFactory(username="bob"))
    theirs = session_id_of(ask(client, lag_alert.pk))
    assert mine != theirs
    assert AlertPresentation.objects.filter(alert=lag_alert).count() == 2


def test_the_alert_pages_presentation_is_reused(auth_client, user, lag_alert, runbooks):
    shown = [runbooks["test/postgres-replication-lag"], runbooks["test/node-disk-full"]]
    presentation = alert_presentation(alert=lag_alert, user=user, runbooks=shown)
    logs_before = AuditLog.objects.count()
    session_id = session_id_of(ask(auth_client, lag_alert.pk))
    answer = ChatMessage.objects.get(session_id=session_id, role=MessageRole.ASSISTANT)
    assert answer.audit_log_id == presentation.audit_log_id
    assert AuditLog.objects.count() == logs_before


def test_only_runbooks_the_user_may_see_are_presented_ranked_from_one(auth_client, user, runbooks):
    secret, disk = runbooks["test/secret-postgres-failover"], runbooks["test/node-disk-full"]
    alert = recommended_alert(runbooks=[secret, disk], confidences=[0.95, 0.5])
    session_id = session_id_of(ask(auth_client, alert.pk))
    answer = ChatMessage.objects.get(session_id=session_id, role=MessageRole.ASSISTANT)
    assert "SecretPostgresFailover" not in answer.content and str(secret.pk) not in answer.content
    assert f"1. [NodeDiskFull](/runbooks/{disk.pk}/)" in answer.content
    presented = RunbookInteractionEvent.objects.filter(audit_log_id=answer.audit_log_id)
    assert [(e.runbook_id, e.rank) for e in presented] == [(disk.pk, 1)]


def test_a_member_of_the_group_sees_the_restricted_runbook_first(client, runbooks):
    secret, disk = runbooks["test/secret-postgres-failover"], runbooks["test/node-disk-full"]
    alert = recommended_alert(runbooks=[secret, disk], confidences=[0.95, 0.5])
    dba = UserFactory(username="dba-member", groups=[Group.objects.get(name=DBA_GROUP)])
    client.force_login(dba)
    session_id = session_id_of(ask(client, alert.pk))
    answer = ChatMessage.objects.get(session_id=session_id, role=MessageRole.ASSISTANT)
    assert f"1. [SecretPostgresFailover](/runbooks/{secret.pk}/)" in answer.content


def test_a_member_who_lost_the_group_is_not_shown_the_restricted_card_in_the_chat(client, runbooks):
    """The alerts page presented the restricted runbook while they were a member; the chat page built from
    that presentation afterwards must not show its card (RBAC holds for what was shown before, too)."""
    secret, disk = runbooks["test/secret-postgres-failover"], runbooks["test/node-disk-full"]
    alert = recommended_alert(runbooks=[secret, disk], confidences=[0.95, 0.5])
    dba_group = Group.objects.get(name=DBA_GROUP)
    dba = UserFactory(username="former-dba", groups=[dba_group])
    client.force_login(dba)
    assert client.get("/alerts/").status_code == 200  # presented with the restricted runbook first
    dba.groups.remove(dba_group)

    session_id = session_id_of(ask(client, alert.pk))
    page = client.get(f"/chat/{session_id}/").content.decode()
    assert str(disk.pk) in page
    assert str(secret.pk) not in page and "SecretPostgresFailover" not in page
    messages = client.get(f"/api/ai-helper/sessions/{session_id}/messages/").json()
    ids = {solution["id"] for message in messages for solution in message.get("solutions", [])}
    assert str(disk.pk) in ids and str(secret.pk) not in ids


def test_an_alert_recommending_nothing_visible_says_so(auth_client, runbooks):
    alert = recommended_alert(runbooks=[runbooks["test/secret-postgres-failover"]], confidences=[0.95])
    session_id = session_id_of(ask(auth_client, alert.pk))
    answer = ChatMessage.objects.get(session_id=session_id, role=MessageRole.ASSISTANT)
    assert answer.content.startswith(NO_RUNBOOKS)


def test_an_alert_still_being_recommended_opens_a_session_without_a_presentation(auth_client, runbooks):
    alert = recommended_alert(runbooks=[runbooks["test/node-disk-full"]])
    alert.recommendation_state = RecommendationState.PENDING
    alert.save(update_fields=["recommendation_state"])
    session_id = session_id_of(ask(auth_client, alert.pk))
    answer = ChatMessage.objects.get(session_id=session_id, role=MessageRole.ASSISTANT)
    assert answer.content.startswith(PENDING) and answer.audit_log_id is None
    assert not AlertPresentation.objects.filter(alert=alert).exists()


def test_secrets_in_the_alert_text_are_replaced_before_they_are_stored(auth_client, runbooks):
    alert = recommended_alert(
        runbooks=[runbooks["test/node-disk-full"]], summary="Login failed with password=hunter2hunter2 on db-1"
    )
    session_id = session_id_of(ask(auth_client, alert.pk))
    question = ChatMessage.objects.get(session_id=session_id, role=MessageRole.USER)
    assert "hunter2hunter2" not in question.content and "[redacted" in question.content
    # Nor in the presentation's audit log, whose query the gap report and the conversation search read.
    log = AlertPresentation.objects.get(alert=alert).audit_log
    assert "hunter2hunter2" not in log.query and "[redacted" in log.query


def test_a_missing_alert_is_404(auth_client, runbooks):
    assert ask(auth_client, 999999).status_code == 404


def test_get_is_refused(auth_client, lag_alert):
    assert auth_client.get(reverse("alerts:ask", args=[lag_alert.pk])).status_code == 405


def test_anonymous_users_are_sent_to_log_in(client, lag_alert):
    response = ask(client, lag_alert.pk)
    assert response.status_code == 302 and "login" in response["Location"]
    assert not AlertSession.objects.exists()


def test_a_post_without_the_csrf_token_is_refused(user, lag_alert):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert ask(client, lag_alert.pk).status_code == 403
    assert not AlertSession.objects.exists()
