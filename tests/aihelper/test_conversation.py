"""Conversations that keep their context (#18), through the query API on the demo runbooks with the real model.

Each test is one chat session as an engineer would type it: a problem, then follow-ups, references to the
previous answer, small talk and a new problem; asserting what they would see first and what the audit log
records for the turn.
"""

from __future__ import annotations

import pytest

from aihelper.chat.turns import fenced_safely, runbook_part, turn_cues
from audit.models import AuditLog, EventSource, RunbookInteractionEvent

pytestmark = pytest.mark.django_db

QUERY = "/api/ai-helper/query"
REDIS = "demo/redis-memory-evictions"
CRASHLOOP = "demo/pod-crashloop"
DISK = "demo/host-disk-full"


@pytest.fixture
def demo_library(db, offline):
    from runbooks.demo import demo_runbooks_ensure
    from runbooks.services import runbooks_embed

    demo_runbooks_ensure()
    runbooks_embed()


def _ask(client, message, session_id=None):
    payload = {"message": message} if session_id is None else {"message": message, "session_id": session_id}
    response = client.post(QUERY, payload, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def _first(body) -> str:
    return body["solutions"][0]["slug"] if body["solutions"] else ""


def test_follow_ups_keep_the_runbook_under_discussion(auth_client, demo_library):
    first = _ask(auth_client, "redis is evicting keys, used memory at maxmemory")
    assert _first(first) == REDIS and first["conversation"]["kind"] == "new"
    session = first["session_id"]

    fix = _ask(auth_client, "how do I fix it quickly?", session)
    assert _first(fix) == REDIS
    assert fix["solutions"][0]["carried_over"] is True
    assert fix["conversation"]["kind"] == "follow_up"
    assert fix["conversation"]["effective_query"] == "how do I fix it quickly?"
    assert "No matching runbook" not in fix["answer_markdown"]
    assert "from earlier in this conversation" in fix["answer_markdown"]

    detail = _ask(auth_client, "it is the sessions cache on prod-eu", session)
    assert _first(detail) == REDIS and detail["solutions"][0]["carried_over"] is True

    owner = _ask(auth_client, "who owns this?", session)
    assert _first(owner) == REDIS and "service: redis, category: capacity" in owner["answer_markdown"]

    thanks = _ask(auth_client, "thanks, that fixed it", session)
    assert thanks["conversation"]["kind"] == "small_talk" and _first(thanks) == REDIS
    assert "Good to hear it is fixed" in thanks["answer_markdown"]


def test_a_new_problem_is_found_and_the_answer_says_so(auth_client, demo_library):
    session = _ask(auth_client, "redis is evicting keys, used memory at maxmemory")["session_id"]
    shift = _ask(auth_client, "different issue: pods of the payments service keep crashlooping after the deploy",
                 session)
    assert shift["conversation"]["kind"] == "shift"
    assert _first(shift) == CRASHLOOP and shift["solutions"][0]["carried_over"] is False
    assert "**New topic.**" in shift["answer_markdown"] and "RedisMemoryHighEvictions" in shift["answer_markdown"]
    # ...and the follow-ups after it are about the new problem.
    after = _ask(auth_client, "can I restart it safely?", session)
    assert _first(after) == CRASHLOOP


def test_a_new_problem_needs_no_announcement(auth_client, demo_library):
    session = _ask(auth_client, "redis is evicting keys, used memory at maxmemory")["session_id"]
    shift = _ask(auth_client, "the TLS certificate of api.example.com expires in 2 days", session)
    assert shift["conversation"]["kind"] == "shift" and _first(shift) == "demo/tls-cert-expiry"


def test_a_weak_match_under_discussion_stays_through_the_follow_ups(auth_client, settings, demo_library):
    # A team that shows weaker matches; the first answer is an uncertain one. Its remembered confidence fades
    # with every turn, but the conversation is still about it: it must not vanish from the follow-ups.
    settings.AIHELPER_CONFIDENCE_THRESHOLD = 0.2
    first = _ask(auth_client, "logs are missing in kibana")
    assert _first(first) == "demo/log-pipeline-stalled" and first["solutions"][0]["confidence"] < 0.3
    session = first["session_id"]
    for message in ("how do I fix it quickly?", "can I restart it safely?", "ok one sec"):
        answer = _ask(auth_client, message, session)
        assert _first(answer) == "demo/log-pipeline-stalled", message
        assert answer["solutions"][0]["carried_over"] is True
        assert "No matching runbook" not in answer["answer_markdown"]


def test_a_step_reference_answers_with_that_step(auth_client, demo_library):
    session = _ask(auth_client, "redis is evicting keys, used memory at maxmemory")["session_id"]
    step = _ask(auth_client, "what does step 3 do?", session)
    assert step["conversation"]["kind"] == "reference" and step["conversation"]["referenced_step"] == 3
    assert _first(step) == REDIS
    assert "Step 3: Find big keys" in step["answer_markdown"]
    assert "redis-cli" in step["answer_markdown"]  # the step's own command, not the first three steps


def test_the_second_one_resolves_to_the_previous_answers_rank(auth_client, settings, demo_library):
    settings.AIHELPER_CONFIDENCE_THRESHOLD = 0.0  # every top-3 result shown: a three-item answer to refer to
    first = _ask(auth_client, "the root disk on web-3 is 97% full")
    assert len(first["solutions"]) >= 2
    second = first["solutions"][1]
    answer = _ask(auth_client, "what should I check first on the second one?", first["session_id"])
    assert answer["conversation"]["kind"] == "reference" and answer["conversation"]["referenced_rank"] == 2
    assert answer["solutions"][0]["id"] == second["id"]
    assert second["title"] in answer["answer_markdown"]


def test_a_runbook_the_user_may_not_see_never_enters_the_context(client, demo_library):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    dba = UserFactory(username="dana")
    dba.groups.add(Group.objects.get(name="dba"))
    outsider = UserFactory(username="olaf")
    client.force_login(outsider)
    # The outsider names the restricted runbook's alert and then follows up: it never appears.
    first = _ask(client, "PostgresReplicationLagHigh: replica is 40 minutes behind the primary")
    follow = _ask(client, "how do I fix it?", first["session_id"])
    for body in (first, follow):
        assert "demo/postgres-replication-lag" not in [s["slug"] for s in body["solutions"]]
        assert "PostgresReplicationLagHigh](" not in body["answer_markdown"]

    # A member sees it, and loses it from the conversation once they leave the group.
    client.force_login(dba)
    first = _ask(client, "PostgresReplicationLagHigh: replica is 40 minutes behind the primary")
    assert _first(first) == "demo/postgres-replication-lag"
    dba.groups.clear()
    follow = _ask(client, "how do I fix it?", first["session_id"])
    assert "demo/postgres-replication-lag" not in [s["slug"] for s in follow["solutions"]]


def test_audit_log_of_each_turn_records_carried_over_and_the_click_counts_for_that_turn(auth_client, demo_library):
    first = _ask(auth_client, "redis is evicting keys, used memory at maxmemory")
    follow = _ask(auth_client, "can I restart it safely?", first["session_id"])
    log = AuditLog.objects.get(pk=follow["audit_log_id"])
    details = log.ai_action_details
    assert details["conversation"]["kind"] == "follow_up"
    assert details["conversation"]["effective_query"] == "can I restart it safely?"
    presented = details["solutions_presented"][0]
    assert presented["carried_over"] is True and presented["runbook_version"] >= 1
    first_presented = AuditLog.objects.get(pk=first["audit_log_id"]).ai_action_details["solutions_presented"][0]
    assert first_presented["carried_over"] is False

    # A click on the carried-over card counts for the turn that showed it.
    solution = follow["solutions"][0]
    response = auth_client.post(
        "/api/ai-helper/track-choice",
        {"audit_log_id": follow["audit_log_id"], "source": EventSource.CHAT_PAGE,
         "choice_data": {"solution_chosen_id": solution["id"], "solution_chosen_type": "runbook",
                         "solution_chosen_rank": 1, "user_action": "clicked_link"}},
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.content
    log.refresh_from_db()
    assert log.user_modifications["solution_chosen_id"] == solution["id"]
    clicks = RunbookInteractionEvent.objects.filter(event_type="clicked_link")
    assert clicks.filter(audit_log_id=log.pk).count() == 1
    assert not clicks.filter(audit_log_id=first["audit_log_id"]).exists()


def test_a_detail_that_rules_out_another_problem_keeps_the_runbook_under_discussion(auth_client, demo_library):
    session = _ask(auth_client, "redis is evicting keys, used memory at maxmemory")["session_id"]
    # "no OOM kills" matches the OOM-killed runbook best on its own words; the engineer is ruling it out.
    detail = _ask(auth_client, "the redis pods are running fine, no OOM kills, but evictions keep climbing", session)
    assert detail["conversation"]["kind"] == "follow_up"
    assert _first(detail) == REDIS
    assert "demo/container-oom-killed" not in [solution["slug"] for solution in detail["solutions"]]


def test_a_new_problem_shown_second_before_becomes_the_topic(auth_client, user, demo_library):
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get_or_create(name="dba")[0])  # the replication runbook is the DBAs'
    session = _ask(auth_client, "pg-replica-1 is 6 minutes behind the primary, reads are stale")["session_id"]
    aside = _ask(auth_client, "a long reporting query runs on the replica, maybe it holds a lock?", session)
    assert [solution["slug"] for solution in aside["solutions"]][:2] == [
        "demo/postgres-replication-lag", "demo/postgres-slow-queries-locks"]
    # The lock runbook was already on screen, second: a new problem about it still moves it first.
    shift = _ask(auth_client, "replica is back in sync. but now the primary has many sessions waiting on a lock on "
                              "the payments table", session)
    assert shift["conversation"]["kind"] == "shift"
    assert _first(shift) == "demo/postgres-slow-queries-locks"
    assert "**New topic.**" in shift["answer_markdown"]


@pytest.mark.parametrize(
    ("message", "ruled_out", "affirmed"),
    [
        ("worker pods are Running, no crashloop, but the ack rate is zero", {"pod", "worker", "crashloop"},
         {"ack", "rate", "zero"}),
        ("kube-proxy logs look clean", {"kube", "proxy", "log"}, set()),
        # A problem said with a healthy word, or the absence of something that should be there, is no ruling out.
        ("pods are Running but not Ready", {"pod"}, {"ready"}),
        ("no space left on device", set(), {"space", "left", "device"}),
        ("no healthy upstream", set(), {"healthy", "upstream"}),
        ("zero ready replicas", set(), {"zero", "ready", "replica"}),
        ("everything is fine except the api returns 500", {"everyth"}, {"api", "return", "500"}),
        # "Running" the verb is no state: these are problems.
        ("pods running out of memory", set(), {"pod", "runn", "memory"}),
        ("disk space running low", set(), {"disk", "space", "runn", "low"}),
        ("disk pressure on ready nodes", set(), {"disk", "press", "ready", "nod"}),
    ],
)
def test_turn_cues_read_what_a_message_rules_out(message, ruled_out, affirmed):
    cues = turn_cues(message)
    assert set(cues.ruled_out) == ruled_out and set(cues.affirmed) == affirmed


@pytest.mark.parametrize(
    ("message", "field", "value"),
    [
        ("what should I check first on the second one?", "rank", 2),
        ("the other one", "rank", 0),
        ("option 3 please", "rank", 3),
        ("what does step 4 do", "step", 4),
        ("and the last step?", "step", -1),
        ("thanks, that fixed it", "small_talk", True),
        ("also the kafka consumers are lagging", "new_problem", True),
        ("ok. separately the bond0 link on worker-31 keeps going up and down", "new_problem", True),
        ("can I restart it now?", "new_problem", False),
        ("how do I fix it quickly?", "rank", None),
        ("redis is evicting keys", "small_talk", False),
        ("ok", "small_talk", True),
        ("cheers mate", "small_talk", True),
        # An acknowledgement that goes on to ask or report something is not small talk.
        ("sure, can I restart it safely?", "small_talk", False),
        ("ok, what's the next step?", "small_talk", False),
        ("no, still not fixed", "small_talk", False),
        ("ok, the disk is full", "small_talk", False),
        ("#2 please", "rank", 2),
        ("what about #2?", "rank", 2),
        ("what's the next step?", "step", None),
    ],
)
def test_turn_cues_read_references_small_talk_and_new_problems(message, field, value):
    assert getattr(turn_cues(message), field) == value


def test_runbook_parts_close_the_code_fence_they_cut_and_read_long_headings():
    body = ("## Diagnosis\n\nRun this:\n\n```shell\n" + "echo line\n" * 400 + "```\n\n"
            "## Mitigation" + " " * 5000 + "now\n\nRestart.\n")
    cues = turn_cues("how do I check the diagnosis?")
    part = runbook_part(message="how do I check the diagnosis?", cues=cues, steps=[], body=body)
    assert part.heading == "Diagnosis" and part.text.count("```") % 2 == 0
    # A heading line with thousands of spaces is read in linear time (no backtracking) and trimmed.
    fix = runbook_part(message="how do I fix it", cues=turn_cues("how do I fix it"), steps=[], body=body)
    assert fix.heading.startswith("Mitigation") and fix.heading.endswith("now") and fix.text == "Restart."
    assert fenced_safely("~~~\ncode") == "~~~\ncode\n~~~"


def test_a_rank_reference_means_the_rank_that_was_shown_even_after_access_is_lost(
    user, library, recommend_all, offline
):
    from django.contrib.auth.models import Group

    from aihelper.chat.services.orchestrator import chat_answer

    secret = str(library["test/secret-postgres-failover"].pk)
    user.groups.add(Group.objects.get(name="dba"))
    question = "promote the postgres replica, the primary database is lost"
    first, other = chat_answer(user=user, message=question), chat_answer(user=user, message=question)
    shown = {solution.rank: solution.id for solution in first.solutions}
    assert shown[1] == secret and len(shown) == 3

    user.groups.clear()
    second = chat_answer(user=user, message="what about the second one?", session_id=first.session.pk)
    assert second.turn.kind == "reference" and second.turn.referenced_rank == 2
    assert second.solutions[0].id == shown[2]  # not the third, which moved up when the first became invisible
    assert secret not in [solution.id for solution in second.solutions]
    gone = chat_answer(user=user, message="and the first one?", session_id=other.session.pk)
    assert gone.turn.referenced_rank is None and secret not in [solution.id for solution in gone.solutions]
