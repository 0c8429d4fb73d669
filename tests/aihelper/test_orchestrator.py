import pytest

from aihelper.chat.llm import LLMError, LLMReply
from aihelper.chat.models import ChatMessage, ChatSession
from aihelper.chat.services.orchestrator import (
    AnswerDelta,
    AnswerReset,
    ChatAnswer,
    SessionNotFound,
    chat_answer,
    chat_answer_stream,
)
from audit.models import AuditLog, EventType, RunbookInteractionEvent
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


class ScriptedProvider:
    """Answers with a fixed text (``{id1}`` etc. filled with the presented ids) or raises."""

    name = "scripted"
    model = "scripted-1"

    def __init__(self, text="", error=None, fail_after_delta=False):
        self.text, self.error, self.fail_after_delta = text, error, fail_after_delta
        self.prompts = []

    def stream(self, *, prompt):
        self.prompts.append(prompt)
        ids = {f"id{runbook.solution.rank}": runbook.solution.id for runbook in prompt.runbooks}
        text = self.text.format(**ids) if ids or "{" not in self.text else self.text
        if self.fail_after_delta:
            yield "partial "
        if self.error:
            raise self.error
        yield text
        yield LLMReply(text=text, provider=self.name, model=self.model, input_tokens=10, output_tokens=5, latency_ms=3)


def test_answer_writes_messages_audit_log_and_presented_events(user, library, recommend_all, offline):
    answer = chat_answer(user=user, message="node disk is full, pods evicted", page_context={"path": "/x/"})
    assert answer.provider == "offline" and not answer.degraded
    assert answer.solutions, "the low threshold recommends the top hits"
    session = ChatSession.objects.get(user=user)
    assert session.title == "node disk is full, pods evicted"
    messages = list(ChatMessage.objects.filter(session=session))
    assert [m.role for m in messages] == ["user", "assistant"]
    assert all(m.audit_log_id == answer.audit_log.pk for m in messages)
    log = AuditLog.objects.get(pk=answer.audit_log.pk)
    details = log.ai_action_details
    assert details["presentation_strategy"] == answer.presentation_strategy
    assert details["threshold"] == 0.0
    assert details["experiment"] is None and details["variant"] is None
    assert "embed_ms" in details["retrieval"]["timings_ms"] or details["retrieval"]["degraded"]
    first = details["solutions_presented"][0]
    assert set(first) >= {"rank", "type", "id", "slug", "title", "confidence", "confidence_components", "success_rate"}
    assert [s["rank"] for s in details["solutions_presented"]] == list(range(1, len(answer.solutions) + 1))
    assert log.llm_provider == "offline" and log.response == answer.answer_markdown
    events = RunbookInteractionEvent.objects.filter(audit_log_id=log.pk, event_type=EventType.PRESENTED)
    assert sorted((str(e.runbook_id), e.rank) for e in events) == sorted(
        (s.id, s.rank) for s in answer.solutions
    )
    assert all(e.page_context == {"path": "/x/"} for e in events)
    assert f'data-audit-log-id="{log.pk}"' in answer.answer_html


def test_nothing_is_written_when_part_of_the_write_fails(user, library, recommend_all, offline, monkeypatch):
    import audit.services.store

    def broken(**kwargs):
        raise RuntimeError("event store down")

    monkeypatch.setattr(audit.services.store, "interaction_event_record", broken)
    with pytest.raises(RuntimeError):
        chat_answer(user=user, message="node disk is full")
    assert not ChatSession.objects.exists()
    assert not ChatMessage.objects.exists()
    assert not AuditLog.objects.exists()


def test_restricted_runbook_never_reaches_an_outsider(user, library, recommend_all):
    provider = ScriptedProvider(text="Try [Secret](/runbooks/{id1}/)")
    restricted = library["test/secret-postgres-failover"]
    answer = chat_answer(user=user, message="postgres replication lag failover promote replica", provider=provider)
    prompt_text = provider.prompts[0].system + "".join(m["content"] for m in provider.prompts[0].messages)
    assert "SecretPostgresFailover" not in prompt_text and str(restricted.pk) not in prompt_text
    assert str(restricted.pk) not in answer.answer_html
    assert str(restricted.pk) not in {s.id for s in answer.solutions}

    insider = UserFactory(username="dba-member", groups=[GroupFactory(name="dba")])
    answer = chat_answer(user=insider, message="postgres replication lag failover promote replica", provider=provider)
    assert str(restricted.pk) in {s.id for s in answer.solutions}


def test_can_execute_rule_for_automated_runbooks(user, staff_user, library, recommend_all, offline):
    automated = str(library["test/web-5xx"].pk)
    answer = chat_answer(user=user, message="web frontend http 5xx errors")
    assert {s.id: s.can_execute for s in answer.solutions}.get(automated) is False
    answer = chat_answer(user=staff_user, message="web frontend http 5xx errors")
    assert {s.id: s.can_execute for s in answer.solutions}.get(automated) is True


def test_unpresented_links_are_removed_and_counted(user, library, recommend_all):
    invented = "99999999-9999-9999-9999-999999999999"
    provider = ScriptedProvider(text="Use [A](/runbooks/{id1}/) not [Fake](/runbooks/" + invented + "/).")
    answer = chat_answer(user=user, message="node disk is full", provider=provider)
    assert answer.audit_log.ai_action_details["links_removed"] == 1
    assert invented not in answer.answer_markdown and invented not in answer.answer_html
    assert 'data-rank="1"' in answer.answer_html


@pytest.mark.parametrize("error", [LLMError("http 529: OverloadedError"), RuntimeError("bug")])
def test_llm_failure_gives_a_degraded_retrieval_answer(user, library, recommend_all, error):
    answer = chat_answer(user=user, message="node disk is full", provider=ScriptedProvider(error=error))
    assert answer.degraded
    log = AuditLog.objects.get(pk=answer.audit_log.pk)
    assert log.degraded and log.error
    assert "NodeDiskFull" in answer.answer_markdown
    assert ChatMessage.objects.filter(audit_log=log).count() == 2


def test_failure_mid_stream_resets_the_streamed_text(user, library, recommend_all):
    provider = ScriptedProvider(error=LLMError("connection error"), fail_after_delta=True)
    events = list(chat_answer_stream(user=user, message="node disk is full", provider=provider))
    assert isinstance(events[0], AnswerDelta)
    assert isinstance(events[1], AnswerReset)
    assert isinstance(events[-1], ChatAnswer) and events[-1].degraded


def test_history_goes_into_the_next_prompt(user, library, recommend_all):
    provider = ScriptedProvider(text="First answer.")
    first = chat_answer(user=user, message="node disk is full", provider=provider)
    chat_answer(user=user, message="and what next?", session_id=first.session.pk, provider=provider)
    messages = provider.prompts[1].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "node disk is full"
    assert messages[1]["content"] == "First answer."
    assert ChatSession.objects.count() == 1


def test_someone_elses_session_is_not_found(user, other_user, library, offline):
    session = ChatSession.objects.create(user=other_user, title="theirs")
    with pytest.raises(SessionNotFound):
        chat_answer_stream(user=user, message="hello", session_id=session.pk)


def test_answer_query_count_is_bounded(user, library, recommend_all, offline):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from aihelper.chat.retrieval import runbooks_find
    from runbooks.search import SearchConfig

    chat_answer(user=user, message="warm up the embedder")
    config = SearchConfig.from_settings()
    with CaptureQueriesContext(connection) as search:
        runbooks_find(query="node disk is full", user=user, limit=config.max_recommended, config=config)
    with CaptureQueriesContext(connection) as answer_queries:
        answer = chat_answer(user=user, message="node disk is full")
    # On top of retrieval: the active experiment, user groups, then the write: 2 savepoints + 2 releases,
    # session, audit log, one INSERT per presented event, one bulk insert of both messages, the session
    # touch; one spare for retrieval's own variation. No N+1 anywhere.
    mine = len(answer_queries) - len(search)
    assert mine <= 11 + len(answer.solutions), [q["sql"][:80] for q in answer_queries.captured_queries]
