"""The service log's rate limit: a flood of one warning becomes a few lines and a count."""

from __future__ import annotations

import io
import json
import logging
import logging.config

from service.logging_setup import RateLimitFilter, log_config


def _record(msg: str, level: int = logging.ERROR, name: str = "asyncio") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_the_same_error_passes_burst_times_per_window_then_reports_what_it_dropped() -> None:
    now = [0.0]
    limit = RateLimitFilter(burst=3, window_s=10.0, clock=lambda: now[0])
    passed = [limit.filter(_record("socket.accept() out of system resource")) for _ in range(1000)]
    assert sum(passed) == 3
    assert limit.filter(_record("another message"))  # counted per message
    now[0] = 10.5
    record = _record("socket.accept() out of system resource")
    assert limit.filter(record)
    assert record.suppressed == 997  # type: ignore[attr-defined]


def test_info_records_such_as_the_access_log_are_never_limited() -> None:
    limit = RateLimitFilter(burst=1, window_s=60.0)
    assert all(limit.filter(_record("request", logging.INFO, "poshuk.access")) for _ in range(100))


def test_asyncio_errors_are_json_lines_and_rate_limited() -> None:
    stream = io.StringIO()
    config = log_config("info")
    config["handlers"]["json"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        log = logging.getLogger("asyncio")
        for _ in range(500):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                log.error("socket.accept() out of system resource", exc_info=True)
    finally:  # undo the configuration for the other tests of this process
        for name in [*config["loggers"], ""]:
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]:
                if getattr(handler, "stream", None) is stream:
                    logger.removeHandler(handler)
            if name:
                logger.propagate = True
                logger.setLevel(logging.NOTSET)
    lines = stream.getvalue().splitlines()
    assert 1 <= len(lines) <= 5
    entry = json.loads(lines[0])
    assert entry["logger"] == "asyncio" and "Too many open files" in entry["exception"]
