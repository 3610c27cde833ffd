"""When to send a request again, and after how long: exponential backoff with jitter on a
503, a 429 and a failed connection, only for requests that are safe to repeat.

A request is safe to repeat when a second copy cannot do anything the first did not
(:attr:`Call.idempotent`): reads, an enqueue with an idempotency key, a cancel, a pause, the
lease protocol's heartbeats and reports (docs/workers.md, "Safe retries"). Any request may be
sent again when it certainly never left (the connection could not be made), and a call may
name answers that say nothing was done (``POST /leases``'s 429).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from jobqueue.client._errors import (
    ApiError,
    ConnectionFailed,
    JobQueueClientError,
    ServiceUnavailable,
    TooManyRequests,
)

T = TypeVar("T")

BACKOFF_BASE_SECONDS = 0.5
"""The first retry waits up to this long; each next one up to twice as long as the one before."""
BACKOFF_CAP_SECONDS = 10.0
"""No backoff is longer than this, seconds."""
MAX_RETRY_AFTER_SECONDS = 30.0
"""A ``Retry-After`` up to this long is waited for; a longer one is not (the error is raised at
once, with its ``retry_after``: the caller decides)."""

RETRIED_STATUSES = frozenset({429, 503})
"""The answers a repeatable request is sent again after."""

# The failures after which the request certainly never reached the service.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The failures worth another try (not a URL that is not http(s), nor a request httpx refuses).
_TRANSIENT = (
    httpx.NetworkError,
    httpx.TimeoutException,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: the request, how safe it is to repeat, and how to read its answer.

    Attributes:
        method: the HTTP method.
        path: the path under the client's URL, e.g. ``/jobs/5``.
        parse: builds the return value from a successful (below 400) answer.
        params: the query parameters (None values are left out).
        body: the JSON body, or None for none.
        idempotent: True when sending it twice does no more than once.
        retry_statuses: the error statuses after which to send it again.
        timeout: the socket timeout, seconds; None: the client's.
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    body: Any = None
    idempotent: bool = False
    retry_statuses: frozenset[int] = field(default=frozenset())
    timeout: float | None = None

    @classmethod
    def repeatable(
        cls,
        method: str,
        path: str,
        parse: Callable[[httpx.Response], T],
        **fields: Any,
    ) -> Call[T]:
        """A call that is safe to repeat: retried after 429, 503 and connection failures."""
        return cls(method, path, parse, idempotent=True, retry_statuses=RETRIED_STATUSES, **fields)


def connection_failed(exc: httpx.TransportError) -> ConnectionFailed:
    """The client's error for a transport failure of httpx."""
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:
        request = None
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed(request, reason, request_sent=not isinstance(exc, _NOT_SENT))


def retry_delay(
    call: Call[Any], error: Exception, cause: Exception | None, retries_done: int, retries: int
) -> float | None:
    """How long to wait before sending ``call`` again after ``error``, seconds; None: raise.

    Args:
        call: the call that failed.
        error: the client's error (:class:`ApiError` or :class:`ConnectionFailed`).
        cause: the httpx exception behind a :class:`ConnectionFailed`, else None.
        retries_done: how many times it was sent again already.
        retries: how many times it may be sent again in all.
    """
    if retries_done >= retries:
        return None
    if isinstance(error, ConnectionFailed):
        if isinstance(cause, _NOT_SENT) or (call.idempotent and isinstance(cause, _TRANSIENT)):
            return backoff(retries_done)
        return None
    if isinstance(error, ApiError) and error.status_code in call.retry_statuses:
        retry_after = (
            error.retry_after if isinstance(error, TooManyRequests | ServiceUnavailable) else None
        )
        if retry_after is None:
            return backoff(retries_done)
        if retry_after > MAX_RETRY_AFTER_SECONDS:
            return None
        return retry_after + random.uniform(0, 0.1 * max(retry_after, 1.0))
    return None


def backoff(retries_done: int) -> float:
    """The wait before retry number ``retries_done + 1``, seconds: uniformly between half and
    all of ``BACKOFF_BASE_SECONDS * 2**retries_done`` (capped at ``BACKOFF_CAP_SECONDS``)."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**retries_done)
    return random.uniform(ceiling / 2, ceiling)


def parse_answer(call: Call[T], response: httpx.Response) -> T:
    """``call``'s value from a successful answer.

    Raises:
        JobQueueClientError: the answer is not what the API sends (a proxy's page, say).
    """
    try:
        return call.parse(response)
    except (ValueError, KeyError, TypeError) as exc:
        raise JobQueueClientError(
            f"unexpected answer {response.status_code} to {call.method} {call.path}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
