"""Writes of the chat app. The entry point is ``aihelper.chat.services.orchestrator.chat_answer(_stream)``;
``aihelper.chat.answers`` holds the pure helpers that render an answer (also used on reload).

Nothing is imported here so that selectors can use those helpers without an import cycle.
"""
