"""Retention for the chat: message text and session titles older than the retention period are blanked
(docs/operations.md, "Retention"). The rows stay, so conversations keep their shape and links to their
audit logs; only the words go. Safe to run again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction

from aihelper.chat.models import ChatMessage, ChatSession
from aihelper.core.redaction import RETENTION_MARKER


@dataclass(frozen=True)
class ChatTextBlanked:
    messages: int
    session_titles: int


@transaction.atomic
def chat_text_blank_before(*, cutoff: dt.datetime) -> ChatTextBlanked:
    messages = (
        ChatMessage.objects.filter(created_at__lt=cutoff).exclude(content=RETENTION_MARKER).update(
            content=RETENTION_MARKER
        )
    )
    # A session touched after the cutoff keeps its title: it names a conversation still in use.
    titles = (
        ChatSession.objects.filter(updated_at__lt=cutoff).exclude(title=RETENTION_MARKER).update(
            title=RETENTION_MARKER
        )
    )
    return ChatTextBlanked(messages=messages, session_titles=titles)
