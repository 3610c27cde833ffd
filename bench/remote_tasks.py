"""The remote worker's tasks in the benchmark (``jobqueue remote-worker --tasks
bench.remote_tasks``): ``noop`` does nothing, as ``bench.tasks.noop`` does in the service, so
the remote drain and the in-process drain run the same jobs."""

from __future__ import annotations

from typing import Any

from jobqueue.client import remote_task


@remote_task("noop")
async def noop(payload: Any) -> None:
    """Nothing at all."""
