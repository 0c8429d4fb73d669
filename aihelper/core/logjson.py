"""One JSON object per log line, with the request id and timing fields passed as ``extra``."""

from __future__ import annotations

import json
import logging

from aihelper.core.middleware import current_request_id
from aihelper.core.redaction import redact

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            # A secret an engineer pasted must not reach the logs either, even inside an error message.
            "message": redact(record.getMessage()).text,
        }
        payload.update({key: value for key, value in record.__dict__.items() if key not in _STANDARD})
        if "request_id" not in payload:
            if current_request_id.get():
                payload["request_id"] = current_request_id.get()
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info)).text
        return json.dumps(payload, default=str)
