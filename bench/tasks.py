"""Tasks the benchmark registers in the jobqueue service (``JOBQUEUE_TASK_MODULES=bench.tasks``).

- ``noop``: does nothing; the drain and enqueue figures use it.
- ``stamp``: returns ``{"t": time.time()}`` taken as the task starts; the pickup-latency figure
  subtracts the time the client started its ``POST /jobs`` from it (same host, same clock).
"""

from __future__ import annotations

import time
from typing import Any

from jobqueue import task


@task("noop")
async def noop(ctx: Any) -> None:
    """Nothing at all."""


@task("stamp")
async def stamp(ctx: Any) -> dict[str, float]:
    """The wall-clock time (seconds since the epoch) at which the task started."""
    return {"t": time.time()}
