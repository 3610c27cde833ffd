"""structlog set-up: JSON lines in production, readable console output in a terminal.

jobqueue's own events go through structlog; the standard library's loggers (uvicorn, alembic,
asyncpg) are rendered by the same processors (``structlog.stdlib.ProcessorFormatter``), so a log
file holds one format only.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]


def configure_logging(log_format: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog and the stdlib root logger once per process.

    Args:
        log_format: ``json`` (one JSON object a line), ``console`` (coloured, aligned), or
            ``auto``: console when stderr is a terminal, JSON otherwise.
        level: ``debug``, ``info``, ``warning`` or ``error``.
    """
    numeric = logging.getLevelName(level.upper())
    use_console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every request's full URL at INFO ("HTTP Request: POST https://…?token=…"):
    # webhook URLs carry secrets in their paths and queries (docs/security.md). Its warnings
    # and errors still pass; the http task logs what it sent without path or query.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


QUIET_LIBRARIES = ("httpx", "httpcore")
"""Libraries whose INFO and DEBUG lines never reach the log (they print whole URLs)."""


class Throttled:
    """One log event that a client can trigger at will, logged at most once per ``interval``
    seconds: each line says how many were left out since the last (``suppressed``), so a flood
    of bad requests costs a few lines a second, not one per request.

    Args:
        event: the event name, e.g. ``"http_headers_timeout"``.
        level: ``"warning"`` or ``"error"``, …
        interval_seconds: the least time between two lines, seconds.
        clock: monotonic seconds (a test passes its own).
    """

    def __init__(
        self,
        event: str,
        level: str = "warning",
        interval_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.event = event
        self.level = level
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._last = float("-inf")
        self._suppressed = 0
        self._log = structlog.get_logger("jobqueue.edge")

    def __call__(self, **fields: Any) -> bool:
        """Log the event with ``fields`` unless one was logged less than ``interval`` ago; True
        when it was logged."""
        now = self.clock()
        if now - self._last < self.interval_seconds:
            self._suppressed += 1
            return False
        self._last = now
        suppressed, self._suppressed = self._suppressed, 0
        getattr(self._log, self.level)(self.event, suppressed=suppressed, **fields)
        return True


class ThrottleFilter(logging.Filter):
    """A stdlib logging filter: the same message at most once per ``interval_seconds``; for
    uvicorn's per-request warnings ("Invalid HTTP request received."), which a client can
    trigger at will. Messages in ``drop`` are never let through (jobqueue logs a structured
    event of its own for them)."""

    def __init__(self, interval_seconds: float = 1.0, drop: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.interval_seconds = interval_seconds
        self.drop = drop
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = str(record.msg)
        if message in self.drop:
            return False
        now = time.monotonic()
        if now - self._last.get(message, float("-inf")) < self.interval_seconds:
            return False
        if len(self._last) > 1000:  # messages are format strings, but bound it all the same
            self._last.clear()
        self._last[message] = now
        return True
