"""Retention: the engineer's words in audit logs older than the retention period are blanked.

Counts, ranks, clicks, ratings, times and the presented solutions stay, so every metric over old data is
unchanged; the query, the answer, feedback comments and the page context become ``RETENTION_MARKER``
(docs/operations.md, "Retention"). Safe to run again: rows already blanked are not touched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from aihelper.core.redaction import RETENTION_MARKER
from audit.models import AuditLog
from audit.sql import audit_log_json_text_blank


@dataclass(frozen=True)
class AuditTextBlanked:
    texts: int  # audit logs whose query and answer were blanked now
    json_texts: int  # audit logs whose feedback comments or page context were blanked now


@transaction.atomic
def audit_logs_text_blank_before(*, cutoff: dt.datetime) -> AuditTextBlanked:
    texts = (
        AuditLog.objects.filter(created_at__lt=cutoff)
        .filter(~Q(query=RETENTION_MARKER) | ~Q(response__in=["", RETENTION_MARKER]))
        .update(query=RETENTION_MARKER, response=RETENTION_MARKER)
    )
    return AuditTextBlanked(texts=texts, json_texts=audit_log_json_text_blank(cutoff=cutoff, marker=RETENTION_MARKER))
