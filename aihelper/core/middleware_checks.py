"""Django's deploy checks security.W001-W003 look for Django's own dotted paths in MIDDLEWARE, not for
subclasses; settings.SILENCED_SYSTEM_CHECKS silences those three and this check (registered by aihelper.ops,
deploy only) stands in for them, accepting Django's class or our event-loop subclass
(aihelper/core/loop_middleware.py)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

_REQUIRED = {
    "security.W001": ("django.middleware.security.SecurityMiddleware", "SecurityMiddleware"),
    "security.W002": ("django.middleware.clickjacking.XFrameOptionsMiddleware", "XFrameOptionsMiddleware"),
    "security.W003": ("django.middleware.csrf.CsrfViewMiddleware", "CsrfViewMiddleware"),
}


def security_middleware_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    installed = set(settings.MIDDLEWARE)
    found = []
    for check_id, (django_path, name) in _REQUIRED.items():
        our_path = f"aihelper.core.loop_middleware.{name}"
        if django_path not in installed and our_path not in installed:
            found.append(checks.Warning(
                f"Neither {django_path} nor {our_path} is in MIDDLEWARE (Django's {check_id}, which "
                "SILENCED_SYSTEM_CHECKS silences because it does not recognise the event-loop subclass).",
                id=f"ops.{check_id.replace('security.', '')}",
            ))
    return found
