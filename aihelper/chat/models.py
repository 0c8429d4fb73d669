import uuid

from django.conf import settings
from django.db import models


class ChatSession(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "ai_helper_sessions"
        ordering = ["-updated_at"]
        indexes = [models.Index(name="ai_sessions_user_updated", fields=["user", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or str(self.id)


class MessageRole(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


class ChatMessage(models.Model):
    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey("aihelper.ChatSession", on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=20, choices=MessageRole.choices)
    content = models.TextField()
    audit_log = models.ForeignKey(
        "audit.AuditLog", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "ai_helper_messages"
        ordering = ["created_at", "id"]
        indexes = [models.Index(name="ai_messages_session_created", fields=["session", "created_at", "id"])]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"
