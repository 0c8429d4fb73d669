"""The default Anthropic model must be one the pinned SDK does not list as deprecated: a deprecated model
stops answering at its end of life and every chat answer would then be degraded."""

from anthropic.resources.messages.messages import DEPRECATED_MODELS
from django.conf import settings


def test_default_model_is_not_deprecated_by_the_sdk():
    assert settings.ANTHROPIC_MODEL not in DEPRECATED_MODELS, (
        f"{settings.ANTHROPIC_MODEL} reaches end of life on {DEPRECATED_MODELS.get(settings.ANTHROPIC_MODEL)}"
    )
