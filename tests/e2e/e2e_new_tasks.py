"""A task only some processes have (a rolling deploy): imported by the test's "new" replica."""

from __future__ import annotations

import asyncio
from typing import Any

from jobqueue import JobContext, task


@task("new_feature")
async def new_feature(ctx: JobContext) -> dict[str, Any]:
    """Sleep ``payload.seconds`` and return the attempt."""
    await asyncio.sleep(float(ctx.payload.get("seconds", 0)))
    return {"attempt": ctx.attempt}
