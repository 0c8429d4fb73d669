"""Analytics reads go to a replica when ANALYTICS_DATABASE_URL is set (alias "analytics").

Writes, migrations and everything else stay on "default". A caller that must read its own uncommitted
writes (verify_phase2 runs inside one rolled-back transaction) pins reads to "default" with
``analytics_reads_on``.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings

ANALYTICS_ALIAS = "analytics"
_pinned: ContextVar[str | None] = ContextVar("analytics_alias_pinned", default=None)


def analytics_read_alias() -> str:
    pinned = _pinned.get()
    if pinned:
        return pinned
    return ANALYTICS_ALIAS if ANALYTICS_ALIAS in settings.DATABASES else "default"


@contextmanager
def analytics_reads_on(alias: str):
    token = _pinned.set(alias)
    try:
        yield
    finally:
        _pinned.reset(token)


class AnalyticsRouter:
    def db_for_read(self, model, **hints):
        if model._meta.app_label == "analytics":
            return analytics_read_alias()
        return None

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
