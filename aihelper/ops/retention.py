"""The retention run across apps (``manage.py apply_retention``): each app blanks its own text."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from aihelper.chat.services.retention import chat_text_blank_before
from alerts.retention import alert_payloads_blank_before
from audit.services.retention import audit_logs_text_blank_before
from runbooks.executions import execution_notes_blank_before


@dataclass(frozen=True)
class RetentionReport:
    messages: int
    session_titles: int
    audit_log_texts: int
    audit_log_json_texts: int
    execution_notes: int
    alert_payloads: int

    def rows(self) -> list[tuple[str, int]]:
        return [
            ("chat messages", self.messages),
            ("session titles", self.session_titles),
            ("audit log queries and answers", self.audit_log_texts),
            ("audit log feedback comments / page context", self.audit_log_json_texts),
            ("execution notes", self.execution_notes),
            ("alert webhook bodies as received", self.alert_payloads),
        ]


def retention_apply(*, cutoff: dt.datetime) -> RetentionReport:
    chat = chat_text_blank_before(cutoff=cutoff)
    audit = audit_logs_text_blank_before(cutoff=cutoff)
    return RetentionReport(
        messages=chat.messages,
        session_titles=chat.session_titles,
        audit_log_texts=audit.texts,
        audit_log_json_texts=audit.json_texts,
        execution_notes=execution_notes_blank_before(cutoff=cutoff),
        alert_payloads=alert_payloads_blank_before(cutoff=cutoff),
    )
