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
import math
import re
import traceback
from typing import Any

from jobqueue.backoff import RetryPolicy
from jobqueue.encoding import nests_deeper
from jobqueue.errors import Discard, RetryLater
from jobqueue.jobs import ClaimedJob, JobStatus, Outcome, find_nul

MAX_ERROR_CHARS = 4000
"""Error messages and tracebacks are cut to this many characters (the traceback keeps its end)."""

MAX_RETRY_DELAY_SECONDS = 366 * 86_400 * 10
"""The longest delay before a retry, in seconds (ten years, as the API's ``delay_seconds``): a
task's ``RetryLater`` asking for more, or for NaN or infinity, gets this. Beyond it ``run_at``
would leave the range every reader can decode (year 9999)."""

# What PostgreSQL's text cannot hold: U+0000, and lone surrogates (not UTF-8; Python makes them
# from undecodable bytes with "surrogateescape", e.g. os.listdir on a non-UTF-8 file name).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# An escape \u0000 preceded by an even number of backslashes (an odd count makes it the text
# "\\u0000", a backslash followed by "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

# Built once: json.dumps with any option set builds a new encoder per call (~1 µs per job).
_RESULT_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

MAX_RESULT_BYTES = 1_048_576
"""The default limit of a result, bytes of compact UTF-8 JSON (``JOBQUEUE_MAX_RESULT_BYTES``)."""


MAX_RESULT_DEPTH = 64
"""The default nesting limit of a result, levels of objects and arrays (the payload's limit,
``JOBQUEUE_MAX_PAYLOAD_DEPTH``, bounds results too): a deeper value could be stored, but the
API's response serializer refuses to write one past about 250 levels, so every read of its job
would fail."""


class ResultTooDeep(ValueError):
    """A task returned a result nesting deeper than the limit; the attempt fails and nothing is
    stored.

    Attributes:
        limit: the limit, levels of objects and arrays.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"the task's result nests more than {limit} levels of objects and arrays "
            "(JOBQUEUE_MAX_PAYLOAD_DEPTH bounds results too): flatten it"
        )


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
    # One such character must not sink a batch write: each becomes U+FFFD.
    return _UNSTORABLE.sub("\ufffd", text)


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
        TypeError/ValueError: when the value is not JSON (NaN, an object, …), or holds what
            PostgreSQL's jsonb cannot store (U+0000, a lone surrogate); the message says which.
    """
    if value is None:  # most tasks return nothing: the hot path
        return "null"
    text = _RESULT_ENCODER.encode(value)
    try:
        if not text.isascii():  # ASCII text (the usual JSON) cannot hold a surrogate
            text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"it holds a lone surrogate ({text[exc.start]!r}), which is not Unicode text: decode "
            "bytes with a real encoding, not 'surrogateescape'"
        ) from None
    if _NUL_ESCAPE.search(text):
        nul_path = find_nul(value, "result") or "result"
        raise ValueError(f"{nul_path} contains U+0000, which PostgreSQL cannot store")
    return text


def _utf8_size(text: str) -> int:
    # ASCII text (the usual JSON) is its length in bytes: no copy of a large result to count it.
    # A lone surrogate cannot be encoded: UnicodeEncodeError, a ValueError (not JSON we store).
    return len(text) if text.isascii() else len(text.encode())


def succeeded(
    job: ClaimedJob,
    value: Any,
    policy: RetryPolicy,
    max_result_bytes: int = MAX_RESULT_BYTES,
    max_result_depth: int = MAX_RESULT_DEPTH,
) -> Outcome:
    """The outcome of an attempt that returned ``value``.

    A value that is not JSON (``TypeError: the task's result is not JSON-serialisable: …``),
    whose compact UTF-8 JSON is over ``max_result_bytes`` bytes (:class:`ResultTooLarge`), or
    that nests more than ``max_result_depth`` levels of objects and arrays
    (:class:`ResultTooDeep`) fails the attempt like an exception would (retried while attempts
    are left), and is never stored: everything that reads a job (``GET /jobs/{id}``, the list,
    the dashboard) then serves at most ``max_result_bytes`` of result, and can serialize it.
    """
    try:
        result_json = encode_result(value)
        size = _utf8_size(result_json)
    except (TypeError, ValueError) as exc:
        error = TypeError(f"the task's result is not JSON-serialisable: {exc}")
        return failed(job, error, policy)
    if size > max_result_bytes:
        return failed(job, ResultTooLarge(size, max_result_bytes), policy)
    if nests_deeper(value, result_json, max_result_depth):
        return failed(job, ResultTooDeep(max_result_depth), policy)
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
        if not math.isfinite(delay) or delay > MAX_RETRY_DELAY_SECONDS:
            delay = MAX_RETRY_DELAY_SECONDS
        delay = max(delay, 0.0)
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


def reported_failure(
    key: tuple[int, int],
    max_attempts: int,
    policy: RetryPolicy,
    *,
    error_type: str,
    message: str,
    trace: str | None,
    retryable: bool,
    retry_delay_seconds: float | None,
) -> Outcome:
    """The outcome of an attempt a remote worker reports failed (``POST /leases/…/fail``).

    Args:
        key: ``(job_id, attempt)``.
        max_attempts: the job's attempts in all.
        retryable: False ends the job ``failed`` at once (as ``Discard``).
        retry_delay_seconds: the delay before the retry, seconds (clamped to 0 and
            :data:`MAX_RETRY_DELAY_SECONDS`); None: ``policy.delay_after(attempt)``.

    Texts are cut to :data:`MAX_ERROR_CHARS` (the traceback keeps its end) and freed of what
    PostgreSQL cannot store, as the in-process classifier does.
    """
    job_id, attempt = key
    status = JobStatus.TODO if retryable and attempt < max_attempts else JobStatus.FAILED
    delay = 0.0
    if status is JobStatus.TODO:
        delay = policy.delay_after(attempt) if retry_delay_seconds is None else retry_delay_seconds
        if not math.isfinite(delay) or delay > MAX_RETRY_DELAY_SECONDS:
            delay = MAX_RETRY_DELAY_SECONDS
        delay = max(delay, 0.0)
    return Outcome(
        job_id,
        attempt,
        status,
        error_type=_clean(error_type[:200]),
        error_message=_clean(message[:MAX_ERROR_CHARS]),
        traceback=None if trace is None else _clean(trace[-MAX_ERROR_CHARS:]),
        retry_delay_seconds=delay,
    )


def reported_result(value: Any, max_result_bytes: int, max_result_depth: int) -> str:
    """A remote worker's result (``POST /leases/…/complete``) as JSON text for ``jobs.result``.

    Raises:
        ResultTooLarge: over ``max_result_bytes`` bytes of compact UTF-8 JSON.
        ResultTooDeep: nesting more than ``max_result_depth`` levels.
        TypeError/ValueError: not storable JSON (see :func:`encode_result`).
    """
    text = encode_result(value)
    size = _utf8_size(text)
    if size > max_result_bytes:
        raise ResultTooLarge(size, max_result_bytes)
    if nests_deeper(value, text, max_result_depth):
        raise ResultTooDeep(max_result_depth)
    return text
