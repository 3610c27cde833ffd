"""Built-in tasks: the original system's simulated work.

- ``echo``: returns ``{"echo": payload}``, the payload unchanged.
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


def check_sleep_payload(payload: dict[str, Any]) -> None:
    """Enqueue-time check of a ``sleep`` payload.

    Raises:
        ValueError: ``seconds`` is not a number from 0 to 3600.
    """
    seconds = payload.get("seconds", 1.0)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= 3600
    ):
        raise ValueError(f"seconds must be a number from 0 to 3600, got {seconds!r}")


@default_registry.task("sleep", validate=check_sleep_payload)
async def sleep(ctx: JobContext) -> dict[str, float]:
    """Sleep ``payload["seconds"]`` seconds (0 to 3600, default 1) and return what it slept.

    Raises:
        Discard: when ``seconds`` is not a number in range (a job stored before the check).
    """
    try:
        check_sleep_payload(ctx.payload)
    except ValueError as exc:
        raise Discard(f"payload.{exc}") from exc
    seconds = float(ctx.payload.get("seconds", 1.0))
    await asyncio.sleep(seconds)
    return {"slept_seconds": seconds}


@default_registry.task("fail")
async def fail(ctx: JobContext) -> None:
    """Raise ``RuntimeError(payload["message"])`` (default ``"failed on purpose"``)."""
    raise RuntimeError(str(ctx.payload.get("message", "failed on purpose")))
