"""Structured logs: one JSON object per line on stderr, for ``poshuk serve``.

``log_config(level)`` is the ``logging.config.dictConfig`` that uvicorn receives: uvicorn's
own loggers and every ``poshuk`` logger write through ``JsonFormatter``. Each line holds
``time``, ``level``, ``logger`` and ``message``, plus the fields a call passed in
``extra`` (the access log's ``request_id``, ``method``, ``route``, ``status``,
``duration_ms``). uvicorn's own access log is off: ``poshuk.access`` replaces it with
the route template instead of the raw path, so query strings never reach the log.

``asyncio``'s logger (where "socket.accept() out of system resource" lands when file
descriptors run out) writes through the same handler, and the handler's
``RateLimitFilter`` lets the same message through at most a few times per window: a
flood of one error becomes a handful of lines and a count of those suppressed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
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


class RateLimitFilter(logging.Filter):
    """Lets each warning or error (logger and format string) through at most ``burst`` times per ``window_s``.

    Info and debug records (the access log) always pass. The first record after a window of
    suppression carries ``suppressed``: how many were dropped.
    """

    def __init__(self, burst: int = 5, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}  # key -> (window start, passed, dropped)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        with self._lock:
            return self._admit(record)

    def _admit(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        start, passed, dropped = self._seen.get(key, (now, 0, 0))
        if now - start >= self.window_s:
            start, passed = now, 0
        if passed >= self.burst:
            self._seen[key] = (start, passed, dropped + 1)
            return False
        if dropped:
            record.suppressed = dropped
        self._seen[key] = (start, passed + 1, 0)
        if len(self._seen) > 10_000:  # many distinct messages: forget the oldest windows
            for old in sorted(self._seen, key=lambda k: self._seen[k][0])[:5_000]:
                del self._seen[old]
        return True


def log_config(level: str) -> dict[str, Any]:
    """The logging set-up of ``poshuk serve``: JSON lines on stderr for uvicorn and Poshuk."""
    level = level.upper()
    handler = {"handlers": ["json"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"rate": {"()": RateLimitFilter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["rate"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": dict(handler),
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "poshuk": dict(handler),
            "asyncio": dict(handler),
        },
        "root": {"handlers": ["json"], "level": "WARNING"},
    }
