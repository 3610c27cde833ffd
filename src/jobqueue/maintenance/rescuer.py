"""Rescuer: returns jobs whose lease expired (their process died or stalled) to ``todo``.

One guarded statement (``leases.rescue``) that any process may run at any time (idempotent, SKIP
LOCKED); a rescue counts as an attempt, so a job that kills its worker every time ends
``failed`` once its attempts are spent (River's rescuer). Every process runs it: no leader is
needed for an idempotent statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue import leases
from jobqueue.db.engine import connect
from jobqueue.errors import DatabaseUnavailable
from jobqueue.jobs import JobStatus
from jobqueue.metrics import Metrics

log = structlog.get_logger(__name__)


class Rescuer:
    """Rescues expired leases every ``interval_seconds``.

    Args:
        engine: the process's engine.
        interval_seconds: the period, in seconds.
        on_rescued: called with the queues that got runnable jobs back (wakes the local
            claimer without waiting for the NOTIFY, which poll-only mode does not have).
        metrics: rescues are counted as ``jobqueue_jobs_finished_total{outcome="rescued"}``.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        interval_seconds: float,
        on_rescued: Callable[[set[str]], None],
        metrics: Metrics,
    ) -> None:
        self.engine = engine
        self.interval_seconds = interval_seconds
        self.on_rescued = on_rescued
        self.metrics = metrics

    async def rescue_once(self) -> list[leases.Rescued]:
        """Rescue every expired lease (in batches of ``leases.RESCUE_BATCH``).

        Raises:
            DatabaseUnavailable: the database cannot be reached.
        """
        rescued: list[leases.Rescued] = []
        while True:
            async with connect(self.engine) as conn:
                batch = await leases.rescue(conn)
            rescued.extend(batch)
            if len(batch) < leases.RESCUE_BATCH:
                break
        self.metrics.count_finished((r.queue, r.task, "rescued") for r in rescued)
        for r in rescued:
            log.warning(
                "job_rescued",
                job_id=r.job_id,
                queue=r.queue,
                task=r.task,
                attempt=r.attempt,
                status=str(r.status),
                worker_id=r.worker_id,
            )
        runnable = {r.queue for r in rescued if r.status is JobStatus.TODO}
        if runnable:
            self.on_rescued(runnable)
        return rescued

    async def run(self) -> None:
        """Rescue every ``interval_seconds`` until cancelled; a database fault is logged and
        the next round tried on time. Anything else propagates (the supervisor restarts it)."""
        while True:
            try:
                await self.rescue_once()
            except DatabaseUnavailable as exc:
                log.warning("rescue_failed", error=str(exc))
            await asyncio.sleep(self.interval_seconds)
