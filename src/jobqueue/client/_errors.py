"""The client's error tree (httpx style: one base, a class per status the service answers).

::

    JobQueueClientError
    ├── ApiError(status_code, detail)          any other 4xx or 5xx answer
    │   ├── BadRequest                          400
    │   ├── Unauthorized                        401
    │   ├── Forbidden                           403
    │   ├── NotFound                            404
    │   ├── Conflict                            409
    │   │   ├── IdempotencyConflict             409, the key names a different job
    │   │   └── LeaseLost                       409, ``"code": "lease_lost"``
    │   ├── ValidationFailed                    422
    │   ├── TooManyRequests(retry_after)        429
    │   └── ServerError                         5xx
    │       └── ServiceUnavailable(retry_after) 503
    ├── ConnectionFailed                        no answer: connect error, timeout, reset
    ├── JobFailed(job, error)                   :meth:`JobQueue.wait`: the job ended failed
    ├── JobCancelled(job)                       :meth:`JobQueue.wait`: the job ended cancelled
    └── WaitTimeout (also a TimeoutError)       :meth:`JobQueue.wait`: not final in time

The service's error bodies are ``{"detail": ...}`` (``api/errors.py``): the detail is a
sentence, or for a schema violation a list of ``{"loc", "msg", "type"}``; every message here
carries it.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from jobqueue.client._models import Job

MAX_DETAIL_CHARS = 1000
"""The longest detail a message quotes, in characters (the attribute keeps all of it)."""

LEASE_LOST_CODE = "lease_lost"
"""The ``code`` of a 409 that says a lease token no longer holds (docs/workers.md)."""

# The service's words for a reused idempotency key (errors.IdempotencyConflict), also when a
# batch prefixes them with the spec's index ("jobs[3]: idempotency key 'k' was used for ...").
_IDEMPOTENCY_DETAIL = re.compile(r"\bidempotency key .* was used for job \d+")


class JobQueueClientError(Exception):
    """The base of every error the client raises."""


class ApiError(JobQueueClientError):
    """The service answered with an error status (4xx or 5xx).

    Attributes:
        status_code: the HTTP status, e.g. 409.
        detail: the body's ``detail`` (a sentence, or a list of schema errors for a 422), or
            the body's text when it has none.
        code: the body's ``code`` when it has one (``"lease_lost"``), else None.
        request: the request that got the answer.
        response: the answer itself (headers, ``text``).
    """

    def __init__(
        self,
        status_code: int,
        detail: Any,
        *,
        code: str | None = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.status_code = status_code
        self.detail = detail
        self.code = code
        self.request = request
        self.response = response
        where = f" from {request.method} {_without_query(request)}" if request else ""
        super().__init__(f"{status_code}{where}: {describe_detail(detail)}")


class BadRequest(ApiError):
    """400: the body is not valid JSON, not UTF-8, names a key twice; or a bad list cursor."""


class Unauthorized(ApiError):
    """401: no key, or a key the service does not know (give one: ``key=``)."""


class Forbidden(ApiError):
    """403: the key's role may not do this (e.g. a ``read`` key cancelling a job)."""


class NotFound(ApiError):
    """404: no such job, queue or schedule, or a lease token that is not this key's."""


class Conflict(ApiError):
    """409: the action does not fit the current state (cancelling a done job, a schedule name
    that is taken)."""


class IdempotencyConflict(Conflict):
    """409: the idempotency key already names a job made from a different request (task,
    queue or payload): use a new key for a new job, or resend the original request."""


class LeaseLost(Conflict):
    """409 with ``"code": "lease_lost"``: the lease token no longer holds (it expired and the
    job was rescued, or it was completed, failed or released already). Stop the job: another
    worker may run it now. Nothing was changed."""


class ValidationFailed(ApiError):
    """422: a field is wrong; ``detail`` says which (a list of ``{loc, msg, type}`` for a
    schema violation, else a sentence)."""


class TooManyRequests(ApiError):
    """429: too many requests wait already (long-polls); try again later.

    Attributes:
        retry_after: the answer's ``Retry-After`` in seconds, or None without one.
    """

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the service failed to answer the request."""


class ServiceUnavailable(ServerError):
    """503: the service runs but cannot serve this now (its database is down, it is starting
    or stopping, or it takes as many request bodies as it can); try again later.

    Attributes:
        retry_after: the answer's ``Retry-After`` in seconds, or None without one.
    """

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ConnectionFailed(JobQueueClientError):
    """No answer: the connection was refused or reset, a timeout ran out, the URL is not
    http(s).

    Attributes:
        request: the request that failed.
        reason: what httpx said, e.g. ``[Errno 111] Connection refused``.
        request_sent: False when the request certainly never reached the service (the
            connection could not be made, or no pooled connection was free in time): sending
            it again cannot do anything twice. True when it may have arrived.
    """

    def __init__(self, request: httpx.Request | None, reason: str, *, request_sent: bool) -> None:
        self.request = request
        self.reason = reason
        self.request_sent = request_sent
        where = f" {request.method} {_without_query(request)}" if request else ""
        super().__init__(f"cannot reach{where}: {reason}")


class JobFailed(JobQueueClientError):
    """:meth:`JobQueue.wait`: the job ended ``failed``.

    Attributes:
        job: the job as it ended (attempts, times, ...).
        error: its last error (``"RuntimeError: boom"``), or None.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.error = job.error
        super().__init__(f"job {job.id} failed: {job.error}")


class JobCancelled(JobQueueClientError):
    """:meth:`JobQueue.wait`: the job ended ``cancelled``.

    Attributes:
        job: the job as it ended.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        super().__init__(f"job {job.id} was cancelled")


class WaitTimeout(JobQueueClientError, TimeoutError):
    """:meth:`JobQueue.wait`: the job was not done, failed or cancelled within the timeout.

    Attributes:
        job: the job as last read (its status then), or None when it was never read.
        timeout: the timeout that ran out, in seconds.
    """

    def __init__(self, job: Job | None, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        state = f" (still {job.status})" if job is not None else ""
        job_name = f"job {job.id}" if job is not None else "the job"
        super().__init__(f"{job_name} did not finish within {timeout:g} s{state}")


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
}


def error_for(response: httpx.Response) -> ApiError:
    """The error to raise for an answer of status 400 or more."""
    body = _json_object(response)
    detail = body.get("detail", response.text) if body is not None else response.text
    code = body.get("code") if body is not None else None
    code = code if isinstance(code, str) else None
    status = response.status_code
    fields: dict[str, Any] = {
        "code": code,
        "request": response.request if _has_request(response) else None,
        "response": response,
    }
    if status == 429:
        return TooManyRequests(status, detail, retry_after=retry_after_of(response), **fields)
    if status == 503:
        return ServiceUnavailable(status, detail, retry_after=retry_after_of(response), **fields)
    if status == 409 and code == LEASE_LOST_CODE:
        return LeaseLost(status, detail, **fields)
    if status == 409 and isinstance(detail, str) and _IDEMPOTENCY_DETAIL.search(detail):
        return IdempotencyConflict(status, detail, **fields)
    if status >= 500:
        return ServerError(status, detail, **fields)
    return _BY_STATUS.get(status, ApiError)(status, detail, **fields)


def retry_after_of(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds from now (RFC 9110 section 10.2.3: a number of
    seconds or an HTTP date), or None when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def describe_detail(detail: Any) -> str:
    """A detail on one line: a sentence as it is; schema errors as ``loc: msg; ...``; cut to
    :data:`MAX_DETAIL_CHARS`."""
    if isinstance(detail, list):
        parts = []
        for error in detail:
            if isinstance(error, dict) and "msg" in error:
                loc = ".".join(str(part) for part in error.get("loc", ()))
                parts.append(f"{loc}: {error['msg']}" if loc else str(error["msg"]))
            else:
                parts.append(str(error))
        text = "; ".join(parts)
    else:
        text = str(detail)
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else f"{text[: MAX_DETAIL_CHARS - 1]}…"


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 (raises RuntimeError on a response built by hand)
    except RuntimeError:
        return False
    return True


def _without_query(request: httpx.Request) -> str:
    return str(request.url.copy_with(query=None))
