"""Rescuer: returns jobs whose lease expired (their process died or stalled) to ``todo``.

One guarded UPDATE that any process may run at any time (it is idempotent and uses SKIP
LOCKED); a rescue counts as an attempt, so a job that kills its worker every time ends
``failed`` once its attempts are spent (River's rescuer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import repository
from jobqueue.db.engine import transaction
from jobqueue.errors import DatabaseUnavailable
from jobqueue.metrics import Metrics

log = structlog.get_logger(__name__)


async def rescue_once(engine: AsyncEngine, metrics: Metrics | None = None) -> int:
    """Rescue the expired leases once; NOTIFY the queues of jobs made runnable again.

    Returns:
        how many jobs were rescued (to ``todo`` or, when spent, ``failed``).
    """
    async with transaction(engine) as conn:
        rows = await repository.rescue(conn)
        runnable = sorted({row["queue"] for row in rows if row["status"] == "todo"})
        if runnable:
            await repository.notify(conn, repository.NOTIFY_QUEUES, runnable)
    if metrics is not None:
        metrics.count_finished((row["queue"], row["task"], "rescued") for row in rows)
    for row in rows:
        log.warning(
            "job_rescued",
            job_id=row["id"],
            queue=row["queue"],
            task=row["task"],
            attempt=row["attempts"],
            status=row["status"],
        )
    return len(rows)


async def rescuer_loop(
    engine: AsyncEngine,
    interval_seconds: float,
    on_rescued: Callable[[], None],
    metrics: Metrics | None = None,
) -> None:
    """Rescue every ``interval_seconds`` until cancelled; calls ``on_rescued`` after a rescue."""
    while True:
        try:
            if await rescue_once(engine, metrics):
                on_rescued()
        except DatabaseUnavailable as exc:
            log.warning("rescue_failed", error=str(exc))
        except Exception:  # a loop boundary: log, and rescue again next time
            log.exception("rescue_error")
        await asyncio.sleep(interval_seconds)
