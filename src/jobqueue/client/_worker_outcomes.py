"""How an attempt's end becomes a report: its outcome, and the body of a failure."""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any

from jobqueue.client._worker_tasks import MAX_ERROR_CHARS, Discard, RetryLater


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: ``error`` None means it returned ``result``."""

    result: Any = None
    error: BaseException | None = None
    size: int = 0  # the result's JSON, characters: what a report batch is bounded by


class Cancelled(Exception):
    """The attempt's job was cancelled by request while it ran."""


def failure_fields(exc: BaseException) -> dict[str, Any]:
    """The body of ``fail`` for ``exc``: type, message, traceback (cut to
    :data:`MAX_ERROR_CHARS`), whether it may be retried, and after how long."""
    if isinstance(exc, Cancelled):
        return {"error_type": "Cancelled", "message": str(exc), "retryable": True}
    trace = "".join(traceback.format_exception(exc))
    return {
        "error_type": type(exc).__name__[:200],
        "message": str(exc)[:MAX_ERROR_CHARS],
        "traceback": trace[-MAX_ERROR_CHARS:],
        "retryable": not isinstance(exc, Discard),
        "retry_delay_seconds": exc.delay_seconds if isinstance(exc, RetryLater) else None,
    }


def result_outcome(value: Any) -> Outcome:
    """The outcome of an attempt that returned ``value``: a failure when it is not JSON (NaN
    and infinity included), as the in-process runner decides."""
    if value is None:  # most tasks return nothing: the hot path
        return Outcome(size=4)
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        return Outcome(error=TypeError(f"the task's result is not JSON-serialisable: {exc}"))
    return Outcome(result=value, size=size)
