"""Structured logs: one JSON object per line on stderr, for ``poshuk serve``.

``log_config(level)`` is the ``logging.config.dictConfig`` that uvicorn receives: uvicorn's
own loggers and every ``poshuk`` logger write through ``JsonFormatter``. Each line holds
``time``, ``level``, ``logger`` and ``message``, plus the fields a call passed in
``extra`` (the access log's ``request_id``, ``method``, ``route``, ``status``,
``duration_ms``). uvicorn's own access log is off: ``poshuk.access`` replaces it with
the route template instead of the raw path, so query strings never reach the log.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in ("color_message",):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(level: str) -> dict[str, Any]:
    """The logging set-up of ``poshuk serve``: JSON lines on stderr for uvicorn and Poshuk."""
    level = level.upper()
    handler = {"handlers": ["json"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": dict(handler),
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "poshuk": dict(handler),
        },
    }
