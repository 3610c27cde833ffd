"""Tasks for the remote worker end-to-end tests, imported by ``jobqueue remote-worker --tasks
tests.e2e.e2e_remote_tasks``.

Each appends ``"<job_id> <attempt>\\n"`` to ``$E2E_RECORD_FILE`` when it starts, so a test can
tell which jobs started and how often, even when the worker is killed half-way.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from jobqueue.client._worker import TaskContext, remote_task

_lock = threading.Lock()


def _record(ctx: TaskContext) -> None:
    with _lock, open(os.environ["E2E_RECORD_FILE"], "a", encoding="utf-8") as file:
        file.write(f"{ctx.job_id} {ctx.attempt}\n")


@remote_task("remote_double")
def remote_double(payload: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    """``{"n": 2 * payload.n}``, in a thread."""
    _record(ctx)
    return {"n": 2 * int(payload["n"])}


@remote_task("remote_sleep")
async def remote_sleep(payload: dict[str, Any], ctx: TaskContext) -> dict[str, float]:
    """Sleep ``payload.seconds`` (60 s in a worker started with ``E2E_REMOTE_SLOW=1``)."""
    _record(ctx)
    seconds = 60.0 if os.environ.get("E2E_REMOTE_SLOW") else float(payload["seconds"])
    await asyncio.sleep(seconds)
    return {"slept": seconds}
