import os
import sys
from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from aihelper.core.embedded_exit import runserver_exit_install
from aihelper.core.middleware_checks import security_middleware_check


class OpsConfig(AppConfig):
    """Operations that look at every app: health endpoints and ``manage.py verify_phase2``. No models."""

    name = "aihelper.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        checks.register(security_middleware_check, checks.Tags.security, deploy=True)
        # `manage.py runserver` stops the embedded PostgreSQL when it stops, however it is stopped
        # (aihelper/core/embedded_exit.py). Other processes are left alone.
        database = settings.DATABASES["default"]
        if database.get("EMBEDDED_PGDATA"):
            runserver_exit_install(
                argv=sys.argv,
                environ=os.environ,
                pgdata=Path(database["EMBEDDED_PGDATA"]),
                cleanup_mode=database.get("EMBEDDED_CLEANUP", "stop"),
            )
