"""The chat app's facade: other apps and the views import from here."""

from aihelper.services.orchestrator import (
    AnswerDelta,
    AnswerReset,
    ChatAnswer,
    SessionNotFound,
    chat_answer,
    chat_answer_stream,
)

__all__ = ["AnswerDelta", "AnswerReset", "ChatAnswer", "SessionNotFound", "chat_answer", "chat_answer_stream"]
