"""Fixtures of the security tests: the chat library and fake Anthropic server of tests/aihelper, plus
an owner (alice, in the dba group) with a session, an answer and an execution, and an outsider (mallory)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.aihelper.conftest import (  # noqa: F401 - fixtures re-exported for this package
    DBA_GROUP,
    RESTRICTED,
    fake_anthropic,
    library,
    offline,
    recommend_all,
)


@dataclass
class Owned:
    """Everything alice owns, whose ids mallory must not be able to use."""

    session_id: str
    audit_log_id: str
    runbook_id: str
    restricted_id: str
    execution_id: str
    alert_id: int  # alerts belong to no one: every logged-in user may see and ask about them


@pytest.fixture
def owner(db, library, recommend_all, offline):  # noqa: F811 - the fixtures imported above
    """alice (dba) with one answered chat and one execution of the restricted runbook."""
    from aihelper.chat.services.orchestrator import chat_answer
    from runbooks.executions import execution_start
    from tests.alerts.alert_rows import alert_row
    from tests.factories import GroupFactory, UserFactory

    alice = UserFactory(username="alice", groups=[GroupFactory(name=DBA_GROUP)])
    answer = chat_answer(user=alice, message="node disk is full")
    restricted = library[RESTRICTED["slug"]]
    execution = execution_start(user=alice, runbook=restricted)
    return alice, Owned(
        session_id=str(answer.session.pk),
        audit_log_id=str(answer.audit_log.pk),
        runbook_id=answer.solutions[0].id,
        restricted_id=str(restricted.pk),
        execution_id=str(execution.pk),
        alert_id=alert_row(alertname="NodeDiskFull").pk,
    )


@pytest.fixture
def mallory(db):
    from tests.factories import UserFactory

    return UserFactory(username="mallory")
