"""Stop waiting for a client that has gone: a long-poll ends when its connection closes.

The ASGI server tells the app that the client went away with an ``http.disconnect`` message on
``receive`` (ASGI HTTP spec, "Disconnect - receive event"); until then, once the request body
has been read, ``receive`` simply blocks. So the wait races the work against one ``receive``:
no polling, no timer, and the work is cancelled the moment the message arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

T = TypeVar("T")

CLIENT_CLOSED_REQUEST = 499
"""The status recorded for a request whose client went away before its answer (nginx's 499)."""


async def until_disconnected(receive: Receive) -> None:
    """Return once ``receive`` yields ``http.disconnect`` (body chunks, if any, are dropped:
    the routes that wait take no body)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(receive: Receive, work: Coroutine[Any, Any, T]) -> T | None:
    """Run ``work`` until it ends or the client disconnects, whichever comes first.

    Args:
        receive: the request's ASGI ``receive`` (``request.receive``).
        work: the coroutine to run (e.g. a long-poll); cancelled if the client goes first.

    Returns:
        what ``work`` returned, or None when the client disconnected first (``work`` has then
        been cancelled and has finished: what it held is released).

    Raises:
        whatever ``work`` raises. Cancelling this call cancels ``work`` too.
    """
    working = asyncio.ensure_future(work)
    watching = asyncio.ensure_future(until_disconnected(receive))
    try:
        await asyncio.wait((working, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if watching.done() and not watching.cancelled():
            watching.exception()  # a failing receive reads as a disconnect: nothing to raise
        watching.cancel()
        if not working.done():
            working.cancel()
            # Let it run its cleanup (its waiter leaves the registry) before answering; a
            # cancellation of this call meanwhile still propagates (asyncio.wait never raises
            # the child's CancelledError, only ours).
            await asyncio.wait((working,))
    if working.cancelled():
        return None
    return working.result()
