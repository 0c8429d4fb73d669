"""The real anthropic SDK against the fake Messages API server."""

import pytest

from aihelper.chat.prompts import SYSTEM_PROMPT
from aihelper.chat.services.orchestrator import chat_answer
from audit.models import AuditLog

pytestmark = pytest.mark.django_db


def test_streamed_answer_and_request_shape(user, library, recommend_all, fake_anthropic):
    disk = library["test/node-disk-full"]
    fake_anthropic.text = f"Follow [NodeDiskFull](/runbooks/{disk.pk}/) first, then check the kubelet."
    answer = chat_answer(user=user, message="node disk is full")
    assert not answer.degraded and answer.provider == "anthropic"
    assert answer.answer_markdown == fake_anthropic.text
    assert f'data-runbook-id="{disk.pk}"' in answer.answer_html
    log = AuditLog.objects.get(pk=answer.audit_log.pk)
    assert (log.input_tokens, log.output_tokens) == (42, 17)
    assert log.llm_model == "claude-test" and log.latency_ms is not None

    request = fake_anthropic.requests[-1]
    assert request["path"] == "/v1/messages"
    body = request["json"]
    assert body["stream"] is True
    assert body["model"] == "claude-test"
    assert body["system"] == SYSTEM_PROMPT
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert "<reference_data>" in body["messages"][-1]["content"]
    assert "NodeDiskFull" in body["messages"][-1]["content"]
    # The installed SDK (2.10) sends the key as a Bearer token; older ones used x-api-key.
    headers = {key.lower(): value for key, value in request["headers"].items()}
    assert "test-key" in (headers.get("x-api-key", ""), headers.get("authorization", "").removeprefix("Bearer "))

    chat_answer(user=user, message="what next?", session_id=answer.session.pk)
    roles = [m["role"] for m in fake_anthropic.requests[-1]["json"]["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert fake_anthropic.requests[-1]["json"]["messages"][1]["content"] == fake_anthropic.text


@pytest.mark.parametrize(
    ("mode", "reason", "attempts"),
    [("429", "http 429", 2), ("500", "http 500", 2), ("529", "http 529", 2), ("garbage", "malformed", 1),
     ("timeout", "timeout", 2)],
)
def test_failures_give_a_degraded_answer(user, library, recommend_all, fake_anthropic, mode, reason, attempts):
    fake_anthropic.mode = mode
    answer = chat_answer(user=user, message="node disk is full")
    assert answer.degraded
    log = AuditLog.objects.get(pk=answer.audit_log.pk)
    assert log.degraded and reason in log.error
    assert log.llm_provider == "anthropic"
    assert "NodeDiskFull" in answer.answer_markdown
    assert len(fake_anthropic.requests) == attempts  # bounded: one retry (ANTHROPIC_MAX_RETRIES=1)


def test_a_retry_that_succeeds_is_not_degraded(user, library, recommend_all, fake_anthropic):
    fake_anthropic.modes = ["529"]
    answer = chat_answer(user=user, message="node disk is full")
    assert not answer.degraded
    assert len(fake_anthropic.requests) == 2


def test_a_follow_up_gives_the_model_the_runbook_in_play_to_link(user, library, fake_anthropic):
    disk = library["test/node-disk-full"]
    fake_anthropic.text = f"Still [NodeDiskFull](/runbooks/{disk.pk}/): prune images first."
    first = chat_answer(user=user, message="the root disk of node worker-3 is almost full, pods evicted")
    assert [solution.slug for solution in first.solutions][:1] == ["test/node-disk-full"]

    follow = chat_answer(user=user, message="can I do it safely during business hours?", session_id=first.session.pk)
    block = fake_anthropic.requests[-1]["json"]["messages"][-1]["content"]
    assert f"(/runbooks/{disk.pk}/)" in block and "carried over from earlier in the conversation" in block
    assert "Conversation: This message follows up on the conversation" in block
    # The model's link to the carried runbook survives the link filter, and the card says where it came from.
    assert f'data-runbook-id="{disk.pk}"' in follow.answer_html
    assert follow.solutions[0].carried_over is True


def test_an_answer_about_a_runbook_the_user_lost_never_reaches_the_model_again(
    user, library, recommend_all, fake_anthropic
):
    from django.contrib.auth.models import Group

    secret = library["test/secret-postgres-failover"]
    user.groups.add(Group.objects.get(name="dba"))
    fake_anthropic.text = f"Use [SecretPostgresFailover](/runbooks/{secret.pk}/): `pg_ctl promote -D /secret/path`."
    first = chat_answer(user=user, message="primary postgres lost, replica lag huge, promote the replica?")
    assert str(secret.pk) in [solution.id for solution in first.solutions]

    user.groups.clear()
    fake_anthropic.text = "Noted."
    chat_answer(user=user, message="what was that command again?", session_id=first.session.pk)
    sent = fake_anthropic.requests[-1]["json"]["messages"]
    everything = " ".join(message["content"] for message in sent)
    assert "/secret/path" not in everything and str(secret.pk) not in everything
    assert "SecretPostgresFailover" not in everything
    assert "left out" in sent[1]["content"]  # the earlier answer is replaced by a note, roles still alternate
