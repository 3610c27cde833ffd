"""Tasks for the end-to-end tests, imported by the server subprocess (JOBQUEUE_TASK_MODULES).

``record`` appends ``"<job_id> <attempt>\\n"`` to the file named by ``E2E_RECORD_FILE`` before it
sleeps, so a test can tell from the file which jobs started and how often, even when the
process running them is killed half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from jobqueue import task
from jobqueue.tasks.registry import JobContext


@task("record")
async def record(ctx: JobContext) -> dict[str, Any]:
    """Append ``"job_id attempt"`` to ``$E2E_RECORD_FILE``, then sleep ``payload.seconds``
    (``payload.first_seconds`` instead on attempt 1, when given)."""
    with open(os.environ["E2E_RECORD_FILE"], "a", encoding="utf-8") as file:  # noqa: ASYNC230
        file.write(f"{ctx.job_id} {ctx.attempt}\n")
        file.flush()
    seconds = ctx.payload.get("seconds", 0)
    if ctx.attempt == 1:
        seconds = ctx.payload.get("first_seconds", seconds)
    await asyncio.sleep(float(seconds))
    return {"ok": True}


@task("block_loop")
async def block_loop(ctx: JobContext) -> str:
    """Block the whole event loop for ``payload.seconds`` (a task that wrongly calls a blocking
    function from async code): nothing else in the process runs meanwhile, heartbeats included."""
    time.sleep(float(ctx.payload.get("seconds", 1)))  # noqa: ASYNC251
    return "unblocked"


@task("stubborn")
async def stubborn(ctx: JobContext) -> str:
    """Ignore cancellation for ``payload.seconds`` (default: for ever), then return: the
    worst-behaved task an async worker can meet."""
    loop = asyncio.get_running_loop()
    until = loop.time() + float(ctx.payload.get("seconds", 1e9))
    while loop.time() < until:
        with contextlib.suppress(asyncio.CancelledError):  # the misbehaviour under test
            await asyncio.sleep(0.2)
    return "done anyway"
