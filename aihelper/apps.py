from django.apps import AppConfig


class AihelperConfig(AppConfig):
    name = "aihelper"
    verbose_name = "AI helper"
    default_auto_field = "django.db.models.BigAutoField"
