from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations that look at every app: health endpoints and ``manage.py verify_phase2``. No models."""

    name = "aihelper.ops"
    label = "ops"
    verbose_name = "Operations"
