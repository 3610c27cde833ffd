"""Request body limits (plain ASGI), enforced before anything parses the body: a size per
request, a time for the body to arrive, and a budget of body bytes in flight across all requests
of the process.

**Size.** A request whose ``Content-Length`` is over ``JOBQUEUE_MAX_REQUEST_BYTES`` is answered
413 at once: the app is not called and not one byte of the body is read, so a 100 MB upload
costs nothing but its headers. A body without a declared length (chunked) is counted as it
streams in, and the request fails with 413 as soon as the count passes the limit, before the
JSON parser sees the body.

**Time.** The whole body must arrive within ``JOBQUEUE_BODY_TIMEOUT_SECONDS`` of the moment the
app is called (right after the request's head): a total, not a time between two reads, so a
body trickled a byte every few seconds is cut off as surely as one that never comes. Past it
the request is answered 408 (when nothing was answered yet) with ``Connection: close``, and its
bytes are given back to the budget at once. Without it, a client that declared a body and sent
nothing kept its request (and, when the budget was taken from declared lengths, 16 MiB of the
budget per connection) for as long as it liked: four such connections once refused every
``POST /jobs`` with 503 for minutes. nginx's ``client_body_timeout`` is a time between two
reads instead; a total is what bounds a trickle.

**Bytes in flight.** A body is held while it is read and while its request is handled (the
JSON parser and the models make several times its size in objects), so concurrent large
bodies add up: six concurrent 32 MB batches once took the process from 129 MB to 1,086 MB and
``/healthz`` to 6.8 s. :class:`BodyBudget` counts the body bytes the requests in progress have
*received* (not declared): a request that declared 16 MiB and sent nothing holds nothing, so
holding the budget costs a client the bytes themselves, not four request heads. A request is
refused with 503 and ``Retry-After`` before its body is read when its declared length does not
fit what is held now (so a client that sent ``Expect: 100-continue`` learns it before sending
the body), and part-way when a chunk it sends would pass
``JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT`` (concurrent bodies admitted together may not all fit:
memory stays bounded, and the request that would pass the budget is the one refused). Its bytes
are given back when its response has been sent. A request refused before its body is read (no
key: 401) takes nothing from the budget.

Refusals for time and budget are counted in ``jobqueue_http_refused_total{reason}``
(``body_timeout``, ``body_budget``) and logged as ``http_refused`` (``api/refusals.py``).

Recent FastAPI has a ``max_body_size`` of its own (Starlette's ``RequestBodyLimitMiddleware``),
but this project supports FastAPI from 0.115, which has none, and Starlette's limiter answers a
request whose body no handler reads with a plain-text 413, has no budget across requests and no
time limit. This one answers JSON like every other error (``{"detail": ...}``, see
``api/errors.py``) and names the setting.
"""

from __future__ import annotations

import asyncio
import json
from typing import NoReturn

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobqueue.api.refusals import EdgeEvents
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


class BodyTimedOut(HTTPException):
    """The body did not arrive within ``JOBQUEUE_BODY_TIMEOUT_SECONDS``: 408 (RFC 9110 section
    15.5.9: the server "did not receive a complete request message within the time that it was
    prepared to wait"), and the connection is closed."""

    def __init__(self, timeout_seconds: float, declared: int | None, received: int) -> None:
        super().__init__(
            status_code=408, detail=timeout_message(timeout_seconds, declared, received)
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


def timeout_message(timeout_seconds: float, declared: int | None, received: int) -> str:
    """The 408 message: how much of the body came, and the setting that bounds its time."""
    of = f" of {declared}" if declared is not None else ""
    return (
        f"the request body did not arrive within {timeout_seconds:g} s "
        f"(JOBQUEUE_BODY_TIMEOUT_SECONDS; {received}{of} bytes received): send the body "
        "right after the headers"
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
    """The request body bytes received and held in this process, and their budget (one per
    app).

    Args:
        budget_bytes: the most bytes at once (``JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT``).
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.in_flight = 0

    def fits(self, size: int) -> bool:
        """True when ``size`` more bytes would fit now (nothing is taken)."""
        return self.in_flight + size <= self.budget_bytes

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of the budget; False (and nothing taken) when they do not fit."""
        if not self.fits(size):
            return False
        self.in_flight += size
        return True

    def release(self, size: int) -> None:
        """Give back ``size`` bytes taken with :meth:`reserve`."""
        self.in_flight -= size


class BodySizeLimit:
    """Wraps the app: bodies over ``max_bytes`` get a 413, bodies that do not fit the budget a
    503, bodies that take longer than ``timeout_seconds`` a 408; none of them is parsed.

    Args:
        app: the ASGI app.
        max_bytes: the largest request body, in bytes (``JOBQUEUE_MAX_REQUEST_BYTES``).
        budget: the process's body bytes in flight.
        metrics: counts the 503s and 408s (``jobqueue_http_refused_total{reason}``,
            ``body_budget`` and ``body_timeout``).
        timeout_seconds: the time the whole body may take from the moment the app is called,
            seconds (``JOBQUEUE_BODY_TIMEOUT_SECONDS``).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        budget: BodyBudget,
        metrics: Metrics | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget = budget
        self.timeout_seconds = timeout_seconds
        self.events = EdgeEvents(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_error(send, 413, too_large_message(self.max_bytes, declared))
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        received = 0
        admitted = False
        body_done = False
        started = False
        cut_off = False  # the body was refused part-way: the rest of it is never read

        async def counting_receive() -> Message:
            nonlocal received, admitted, body_done, cut_off
            if body_done:  # after the body only http.disconnect comes: no limit applies
                return await receive()
            if not admitted:
                # Checked when the app first reads, not when the request arrives: a request
                # refused before its body is read (401, 403, 404) is never refused for the
                # budget. Nothing is taken yet: the bytes are, as they come.
                if declared and not self.budget.fits(declared):
                    cut_off = True
                    self._refuse_busy(scope, declared, received)
                admitted = True
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                cut_off = True
                self.events.refused(
                    "body_timeout",
                    scope.get("client"),
                    declared_bytes=declared,
                    received_bytes=received,
                    timeout_seconds=self.timeout_seconds,
                )
                raise BodyTimedOut(self.timeout_seconds, declared, received) from None
            if message["type"] != "http.request":
                body_done = True
                return message
            chunk = len(message.get("body", b""))
            if received + chunk > self.max_bytes:
                cut_off = True
                raise BodyTooLarge(self.max_bytes)
            if not self.budget.reserve(chunk):
                cut_off = True
                self._refuse_busy(scope, declared, received)
            received += chunk
            body_done = not message.get("more_body", False)
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
        except (BodyTooLarge, BodyBudgetExceeded, BodyTimedOut) as exc:
            # Read outside the app's exception handlers (e.g. by a middleware): answer here.
            if started:
                raise
            await _send_error(send, exc.status_code, str(exc.detail), retry=exc.status_code == 503)
        finally:
            self.budget.release(received)

    def _refuse_busy(self, scope: Scope, declared: int | None, received: int) -> NoReturn:
        self.events.refused(
            "body_budget",
            scope.get("client"),
            declared_bytes=declared,
            received_bytes=received,
            in_flight_bytes=self.budget.in_flight,
        )
        raise BodyBudgetExceeded(self.budget.budget_bytes)


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
