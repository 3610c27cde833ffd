"""The request body size limit (plain ASGI), enforced before anything parses the body.

A request whose ``Content-Length`` is over the limit is answered 413 at once: the app is not
called and not one byte of the body is read, so a 100 MB upload costs nothing but its headers.
A body without a declared length (chunked) is counted as it streams in, and the request fails
with 413 as soon as the count passes the limit, before the JSON parser sees the body.

Recent FastAPI has a ``max_body_size`` of its own (Starlette's ``RequestBodyLimitMiddleware``),
but this project supports FastAPI from 0.115, which has none, and Starlette's limiter answers a
request whose body no handler reads with a plain-text 413. This one answers JSON like every other
error (``{"detail": ...}``, see ``api/errors.py``) and names the setting.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """The body passed the limit while it was read; the app's handler for Starlette's
    ``HTTPException`` (``api/errors.py``) turns it into the JSON 413."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit_bytes))


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


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` as an int, or None when absent or not a number (the
    server refuses a malformed one before the app is called)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # isdigit() alone is true of "²" and other non-ASCII digits, which int() refuses.
            return int(text) if text.isascii() and text.isdigit() else None
    return None


class BodySizeLimit:
    """Wraps the app: bodies over ``max_bytes`` get a 413 and are never parsed.

    Args:
        app: the ASGI app.
        max_bytes: the largest request body, in bytes (``JOBQUEUE_MAX_REQUEST_BYTES``).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_413(send, too_large_message(self.max_bytes, declared))
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            # Read outside the app's exception handlers (e.g. by a middleware): answer here.
            if started:
                raise
            await _send_413(send, str(exc.detail))


async def _send_413(send: Send, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The unread body is still on the wire: this connection cannot carry another
                # request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
