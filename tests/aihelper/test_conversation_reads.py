"""The session read once per turn (aihelper/chat/selectors.py ``conversation_so_far``): the past turns the
retrieval uses and the history the prompt gets, with RBAC re-checked for what the search did not just see."""

from __future__ import annotations

from django.contrib.auth.models import Group

from aihelper.chat.selectors import HIDDEN_ANSWER, chat_history, conversation_so_far
from aihelper.chat.services.orchestrator import chat_answer


def _session(user, library):
    user.groups.add(Group.objects.get(name="dba"))
    first = chat_answer(user=user, message="primary postgres lost, replica lag huge, promote the replica?")
    second = chat_answer(user=user, message="the root disk of node worker-3 is almost full, pods evicted",
                         session_id=first.session.pk)
    return first, second


def test_the_past_turns_and_the_history_come_from_one_read(user, library, recommend_all,
                                                          django_assert_num_queries):
    first, second = _session(user, library)
    with django_assert_num_queries(1):
        conversation = conversation_so_far(session=second.session)
    # Newest first: the disk answer, then the failover answer, each with what it presented.
    assert [turn.query for turn in conversation.past_turns] == [
        "the root disk of node worker-3 is almost full, pods evicted",
        "primary postgres lost, replica lag huge, promote the replica?",
    ]
    assert [s.id for s in conversation.past_turns[0].solutions] == [s.id for s in second.solutions]
    assert conversation_so_far(session=second.session, turns=1).past_turns == conversation.past_turns[:1]
    assert conversation_so_far(session=None).past_turns == ()
    history = chat_history(conversation=conversation, user=user)
    assert [role for role, _ in history] == ["user", "assistant", "user", "assistant"]  # oldest first
    assert history[0][1] == "primary postgres lost, replica lag huge, promote the replica?"
    assert HIDDEN_ANSWER not in [content for _, content in history]


def test_runbooks_the_turn_just_found_visible_are_not_checked_again_and_the_others_are(
    user, library, recommend_all, django_assert_num_queries
):
    first, second = _session(user, library)
    secret = library["test/secret-postgres-failover"]
    assert str(secret.pk) in [solution.id for solution in first.solutions]
    conversation = conversation_so_far(session=second.session)
    everything = {solution.id for answer in (first, second) for solution in answer.solutions}
    with django_assert_num_queries(0):
        trusted = chat_history(conversation=conversation, user=user, known_visible=everything)
    assert trusted == chat_history(conversation=conversation, user=user)

    # The user lost the dba group; the turn's search (which no longer finds the secret runbook) vouches only for
    # the others: the rest is checked, and every answer that presented the secret runbook is left out.
    user.groups.clear()
    secret_id = str(secret.pk)
    vouched = everything - {secret_id}
    with django_assert_num_queries(1):
        history = chat_history(conversation=conversation, user=user, known_visible=vouched)
    assert [content for role, content in history if role == "assistant"] == [
        HIDDEN_ANSWER if secret_id in {s.id for s in answer.solutions} else answer.answer_markdown
        for answer in (first, second)
    ]
    assert history[1] == ("assistant", HIDDEN_ANSWER)
