"""Request body limits (plain ASGI), enforced before anything parses the body: a size per
request, and a budget of body bytes in flight across all requests of the process.

**Size.** A request whose ``Content-Length`` is over ``JOBQUEUE_MAX_REQUEST_BYTES`` is answered
413 at once: the app is not called and not one byte of the body is read, so a 100 MB upload
costs nothing but its headers. A body without a declared length (chunked) is counted as it
streams in, and the request fails with 413 as soon as the count passes the limit, before the
JSON parser sees the body.

**Bytes in flight.** A body is held while it is read and while its request is handled (the
JSON parser and the models make several times its size in objects), so concurrent large
bodies add up: six concurrent 32 MB batches once took the process from 129 MB to 1,086 MB and
``/healthz`` to 6.8 s. :class:`BodyBudget` counts the body bytes of the requests in progress,
each from its declared length (reserved when the app first reads it, before a byte is read) or,
when chunked, as it streams in; a request that would pass
``JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT`` gets 503 with ``Retry-After`` and is not read further.
Its bytes are given back when its response has been sent. A request refused before its body is
read (no key: 401) takes nothing from the budget.

Recent FastAPI has a ``max_body_size`` of its own (Starlette's ``RequestBodyLimitMiddleware``),
but this project supports FastAPI from 0.115, which has none, and Starlette's limiter answers a
request whose body no handler reads with a plain-text 413 and has no budget across requests.
This one answers JSON like every other error (``{"detail": ...}``, see ``api/errors.py``) and
names the setting.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobqueue.metrics import Metrics

RETRY_AFTER_SECONDS = 1
CLOSE = (b"connection", b"close")


class BodyTooLarge(HTTPException):
    """The body passed the limit while it was read; the app's handler for Starlette's
    ``HTTPException`` (``api/errors.py``) turns it into the JSON 413."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit_bytes))


class BodyBudgetExceeded(HTTPException):
    """The body would pass the process's budget of body bytes in flight: 503 with
    ``Retry-After`` (the same request succeeds once other bodies are done)."""

    def __init__(self, budget_bytes: int) -> None:
        super().__init__(
            status_code=503,
            detail=busy_message(budget_bytes),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def too_large_message(limit_bytes: int, declared_bytes: int | None = None) -> str:
    """The 413 message: what the limit is, which setting holds it, and what to do instead."""
    size = (
        f"is {declared_bytes} bytes"
        if declared_bytes is not None
        else f"passed {limit_bytes} bytes before it ended"
    )
    return (
        f"the request body {size}; the limit is {limit_bytes} bytes "
        "(JOBQUEUE_MAX_REQUEST_BYTES): split a large batch into several requests, and keep "
        "large data out of payloads"
    )


def busy_message(budget_bytes: int) -> str:
    """The 503 message of the in-flight budget."""
    return (
        "the service is receiving as many request bodies as it takes at once "
        f"({budget_bytes} bytes in flight, JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT): retry in "
        f"{RETRY_AFTER_SECONDS} s, or send smaller requests"
    )


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` as an int, or None when absent or not a number (the
    server refuses a malformed one before the app is called)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # isdigit() alone is true of "²" and other non-ASCII digits, which int() refuses.
            return int(text) if text.isascii() and text.isdigit() else None
    return None


class BodyBudget:
    """The request body bytes in flight in this process, and their budget (one per app).

    Args:
        budget_bytes: the most bytes at once (``JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT``).
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.in_flight = 0

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of the budget; False (and nothing taken) when they do not fit."""
        if self.in_flight + size > self.budget_bytes:
            return False
        self.in_flight += size
        return True

    def release(self, size: int) -> None:
        """Give back ``size`` bytes taken with :meth:`reserve`."""
        self.in_flight -= size


class BodySizeLimit:
    """Wraps the app: bodies over ``max_bytes`` get a 413, bodies that do not fit the budget a
    503; neither is parsed.

    Args:
        app: the ASGI app.
        max_bytes: the largest request body, in bytes (``JOBQUEUE_MAX_REQUEST_BYTES``).
        budget: the process's body bytes in flight.
        metrics: counts the 503s (``jobqueue_http_refused_total{reason="body_budget"}``).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, budget: BodyBudget, metrics: Metrics | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget = budget
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_error(send, 413, too_large_message(self.max_bytes, declared))
            return
        reserved = 0
        received = 0
        started = False
        cut_off = False  # the body was refused part-way: the rest of it is never read

        async def counting_receive() -> Message:
            nonlocal received, reserved, cut_off
            if declared and not reserved:
                # Reserved when the app first reads, not when the request arrives: a request
                # refused before its body is read (401, 403, 404) never holds any of the budget.
                if not self.budget.reserve(declared):
                    cut_off = True
                    self._count_busy()
                    raise BodyBudgetExceeded(self.budget.budget_bytes)
                reserved = declared
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    cut_off = True
                    raise BodyTooLarge(self.max_bytes)
                if received > reserved:
                    if not self.budget.reserve(received - reserved):
                        cut_off = True
                        self._count_busy()
                        raise BodyBudgetExceeded(self.budget.budget_bytes)
                    reserved = received
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if cut_off:  # without it uvicorn would read the rest of the body to its end
                    message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except (BodyTooLarge, BodyBudgetExceeded) as exc:
            # Read outside the app's exception handlers (e.g. by a middleware): answer here.
            if started:
                raise
            await _send_error(send, exc.status_code, str(exc.detail), retry=exc.status_code == 503)
        finally:
            self.budget.release(reserved)

    def _count_busy(self) -> None:
        if self.metrics is not None:
            self.metrics.http_refused.labels("body_budget").inc()


async def _send_error(send: Send, status: int, message: str, retry: bool = False) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # The unread body is still on the wire: this connection cannot carry another request.
        CLOSE,
    ]
    if retry:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
