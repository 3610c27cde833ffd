"""The single outcome classifier: how an attempt's end becomes the job's next state.

Pure functions (no I/O): the in-process runner calls them, and so will any other client of
``leases/`` that runs a task and reports how it ended.

One function decides, for every way an attempt can end (pgqueuer's single classifier):

- returned a value      → ``done`` with the value as result
- returned a non-JSON value, or one over ``max_result_bytes`` → as "raised": never stored
- raised ``Discard``    → ``failed`` at once
- raised ``RetryLater`` → ``todo`` after its delay (``failed`` when no attempts are left)
- raised, attempts left → ``todo`` again after ``policy.delay_after(attempt)`` (full jitter)
- raised, none left     → ``failed``
- ran past its timeout  → as "raised", with a ``TimeoutError`` message
- cancelled by request  → ``cancelled``
"""

from __future__ import annotations

import json
import traceback
from typing import Any

from jobqueue.backoff import RetryPolicy
from jobqueue.errors import Discard, RetryLater
from jobqueue.jobs import ClaimedJob, JobStatus, Outcome, find_nul

MAX_ERROR_CHARS = 4000
"""Error messages and tracebacks are cut to this many characters (the traceback keeps its end)."""

MAX_RESULT_BYTES = 1_048_576
"""The default limit of a result, bytes of compact UTF-8 JSON (``JOBQUEUE_MAX_RESULT_BYTES``)."""


class ResultTooLarge(ValueError):
    """A task returned a result larger than the limit; the attempt fails and nothing is stored.

    Attributes:
        size: the result's size, bytes of compact UTF-8 JSON.
        limit: the limit, bytes.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"the task's result is {size} bytes of JSON; the limit is {limit} bytes "
            "(JOBQUEUE_MAX_RESULT_BYTES)"
        )


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold U+0000; one such character must not sink a batch write.
    return text.replace("\x00", "\ufffd")


def describe_error(exc: BaseException) -> tuple[str, str, str]:
    """``(type name, message, trimmed traceback)`` of ``exc``, each free of U+0000.

    The traceback keeps its last frames, at most ``MAX_ERROR_CHARS`` characters.
    """
    trace = "".join(traceback.format_exception(exc))
    return (
        _clean(type(exc).__name__),
        _clean(str(exc)[:MAX_ERROR_CHARS]),
        _clean(trace[-MAX_ERROR_CHARS:]),
    )


def encode_result(value: Any) -> str:
    """A task's return value as JSON text for ``jobs.result``.

    Raises:
        TypeError/ValueError: when the value is not JSON (NaN, an object, …).
    """
    nul_path = find_nul(value, "result")
    if nul_path is not None:
        raise ValueError(f"{nul_path} contains U+0000, which PostgreSQL cannot store")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _utf8_size(text: str) -> int:
    # ASCII text (the usual JSON) is its length in bytes: no copy of a large result to count it.
    # A lone surrogate cannot be encoded: UnicodeEncodeError, a ValueError (not JSON we store).
    return len(text) if text.isascii() else len(text.encode())


def succeeded(
    job: ClaimedJob, value: Any, policy: RetryPolicy, max_result_bytes: int = MAX_RESULT_BYTES
) -> Outcome:
    """The outcome of an attempt that returned ``value``.

    A value that is not JSON (``TypeError: the task's result is not JSON-serialisable: …``) or
    whose compact UTF-8 JSON is over ``max_result_bytes`` bytes (:class:`ResultTooLarge`) fails
    the attempt like an exception would (retried while attempts are left), and is never stored:
    everything that reads a job (``GET /jobs/{id}``, the list, the dashboard) then serves at
    most ``max_result_bytes`` of result.
    """
    try:
        result_json = encode_result(value)
        size = _utf8_size(result_json)
    except (TypeError, ValueError) as exc:
        error = TypeError(f"the task's result is not JSON-serialisable: {exc}")
        return failed(job, error, policy)
    if size > max_result_bytes:
        return failed(job, ResultTooLarge(size, max_result_bytes), policy)
    return Outcome(job.id, job.attempt, JobStatus.DONE, result_json=result_json)


def failed(job: ClaimedJob, exc: BaseException, policy: RetryPolicy) -> Outcome:
    """The outcome of an attempt that raised ``exc`` (or timed out)."""
    error_type, message, trace = describe_error(exc)
    if isinstance(exc, Discard) or job.attempt >= job.max_attempts:
        status = JobStatus.FAILED
        delay = 0.0
    else:
        status = JobStatus.TODO
        if isinstance(exc, RetryLater):
            delay = exc.delay_seconds
        else:
            delay = policy.delay_after(job.attempt)
    return Outcome(
        job.id,
        job.attempt,
        status,
        error_type=error_type,
        error_message=message,
        traceback=trace,
        retry_delay_seconds=delay,
    )


def cancelled(job: ClaimedJob) -> Outcome:
    """The outcome of an attempt cancelled by ``POST /jobs/{id}/cancel``."""
    return Outcome(
        job.id,
        job.attempt,
        JobStatus.CANCELLED,
        error_type="Cancelled",
        error_message="cancelled by request while running",
    )
