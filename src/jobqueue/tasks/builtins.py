"""Built-in tasks: the original system's simulated work.

- ``echo``: returns ``{"payload": ..., "description": ...}``-style echo of the payload.
- ``sleep``: payload ``{"seconds": float}`` (0 to 3600, default 1), sleeps that long and returns
  ``{"slept_seconds": float}``.
- ``fail``: payload ``{"message": str}``, raises ``RuntimeError(message)``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jobqueue.errors import Discard
from jobqueue.tasks.registry import JobContext, default_registry


@default_registry.task("echo")
async def echo(ctx: JobContext) -> dict[str, Any]:
    """Return the payload unchanged, as ``{"echo": payload}``."""
    return {"echo": ctx.payload}


@default_registry.task("sleep")
async def sleep(ctx: JobContext) -> dict[str, float]:
    """Sleep ``payload["seconds"]`` seconds (0 to 3600, default 1) and return what it slept.

    Raises:
        Discard: when ``seconds`` is not a number in range (retrying would not help).
    """
    seconds = ctx.payload.get("seconds", 1.0)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= 3600
    ):
        raise Discard(f"payload.seconds must be a number from 0 to 3600, got {seconds!r}")
    await asyncio.sleep(float(seconds))
    return {"slept_seconds": float(seconds)}


@default_registry.task("fail")
async def fail(ctx: JobContext) -> None:
    """Raise ``RuntimeError(payload["message"])`` (default ``"failed on purpose"``)."""
    raise RuntimeError(str(ctx.payload.get("message", "failed on purpose")))
