from django.apps import AppConfig


class ChatConfig(AppConfig):
    """The chat app. Its label stays "aihelper" so its tables, migrations and "aihelper.ChatSession"
    foreign keys are unchanged after it moved into aihelper/chat/ (docs/architecture.md)."""

    name = "aihelper.chat"
    label = "aihelper"
    verbose_name = "AI helper"
    default_auto_field = "django.db.models.BigAutoField"
