"""Chat sessions and messages for tests that need a conversation without asking the helper."""

from __future__ import annotations

import factory

from aihelper.chat.models import ChatMessage, ChatSession, MessageRole
from aihelper.chat.prompts import RunbookContext
from audit.details import PresentedSolution
from tests.factories import UserFactory


class ChatSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatSession

    user = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"incident {n}")


class ChatMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatMessage

    session = factory.SubFactory(ChatSessionFactory)
    role = MessageRole.USER
    content = "disk full on db host"
    audit_log = None


def runbook_context(*, description: str = "", steps=(), **solution) -> RunbookContext:
    """A presented runbook as the prompt sees it: ``runbook_context(rank=1, id=..., title=..., description=...)``."""
    return RunbookContext(solution=PresentedSolution(**solution), description=description, steps=tuple(steps))
