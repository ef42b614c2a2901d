"""Log format of every Chorus process: uvicorn's plain text by default, one JSON object per line with
``CHORUS_LOG_FORMAT=json`` (for a log collector: no multi-line tracebacks to stitch together).

A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, and ``exception`` (the formatted
traceback) when there is one. Eight lines of formatter rather than a dependency (python-json-logger): nothing
else in that library is needed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from chorus.shared.contract.errors import InvalidInput

FORMATS = ("text", "json")
_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: str | None = None) -> None:
    """Apply ``CHORUS_LOG_FORMAT`` (or ``log_format``) to this process's loggers; idempotent."""
    log_format = (log_format or os.environ.get("CHORUS_LOG_FORMAT") or "text").lower()
    if log_format not in FORMATS:
        raise InvalidInput(f"CHORUS_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    if log_format == "text":
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = not name
    logging.getLogger("chorus").setLevel(logging.INFO)
