"""JSON request bodies are UTF-8: checked on the bytes, before anything parses them.

RFC 8259, section 8.1: JSON exchanged between systems that are not part of a closed ecosystem
MUST be encoded using UTF-8, and implementations MUST NOT add a byte order mark. FastAPI parses
a body with ``json.loads(bytes)``, which guesses UTF-16 and UTF-32 from the position of NUL bytes
and drops a UTF-8 byte order mark: left alone, a UTF-16 body would be accepted, and a body
that is not valid UTF-8 would get FastAPI's vague "error parsing the body". The route class
below refuses all of these with a 400 that says what to send.

Only the bytes' encoding is checked here; the JSON itself is still parsed by FastAPI. A
``charset`` parameter of the ``Content-Type`` is ignored, as RFC 8259 defines none for
``application/json`` (section 11: "adding one really has no effect on compliant recipients").
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from jobqueue.errors import BodyNotUtf8

SEND_UTF8 = "send the JSON encoded as UTF-8 without a byte order mark (RFC 8259, section 8.1)"


def check_utf8_json(body: bytes) -> None:
    """Refuse a body that is not UTF-8 text without a byte order mark.

    An ASCII body (the usual case) is checked without decoding it: no copy of a large body.

    Raises:
        BodyNotUtf8: a byte order mark, NUL bytes (UTF-16 or UTF-32 text; UTF-8 JSON has none:
            a NUL in a string is written ``\\u0000``), or bytes that are not valid UTF-8
            (encoded surrogates included); the message names the first bad byte's offset.
    """
    if body.startswith(codecs.BOM_UTF8):
        raise BodyNotUtf8(f"the request body starts with a UTF-8 byte order mark: {SEND_UTF8}")
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in body:
        raise BodyNotUtf8(
            f"the request body looks like UTF-16 or UTF-32 (it holds NUL bytes): {SEND_UTF8}"
        )
    if body.isascii():
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyNotUtf8(
            f"the request body is not valid UTF-8 (byte {exc.start}): {SEND_UTF8}"
        ) from None


def declares_json(content_type: str | None) -> bool:
    """True when FastAPI would parse a body of this ``Content-Type`` as JSON: none given,
    ``application/json`` or ``application/*+json`` (RFC 6839, section 3.1). Other bodies are
    answered 415 by ``api/errors.py``, whatever their bytes."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class Utf8JsonRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` whose JSON request body, when it takes one, must
    be UTF-8 (:func:`check_utf8_json`) before FastAPI parses it. Use it as a router's
    ``route_class``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, preceded by the encoding check when the route has a body."""
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def checked(request: Request) -> Response:
            if declares_json(request.headers.get("content-type")):
                check_utf8_json(await request.body())  # cached: FastAPI reads the same bytes
            return await handler(request)

        return checked
