"""Pruner: deletes finished jobs once they are older than their status's retention age.

``done``, ``cancelled`` and ``failed`` jobs each have an age (``JOBQUEUE_RETENTION_DONE_SECONDS``
and the others; 0 keeps them for ever), counted from ``finished_at`` on the database clock.
Every ``interval_seconds`` the pruner walks the table in id order, a window of ``batch_size``
rows per short transaction (``db/retention.py``), deleting the due jobs, until no later row can
be due. Every process
with workers runs it; an advisory lock taken per batch lets one prune at a time, and a process
that finds it taken skips its round (Oban's and River's pruners are leader-only for the same
reason: two pruners would only fight over the same rows).

A job's idempotency key lives as long as the job: once the job is pruned, a request with the
same key creates a new job (docs/jobs.md, "Idempotency").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import retention
from jobqueue.db.engine import write
from jobqueue.errors import DatabaseUnavailable
from jobqueue.jobs import JobStatus
from jobqueue.metrics import Metrics

log = structlog.get_logger(__name__)

PRUNE_BATCH = 2000
"""Rows read per transaction (at most as many deleted): small enough that each holds its row
locks for milliseconds."""


class Pruner:
    """Deletes finished jobs past their retention age every ``interval_seconds``.

    Args:
        engine: the process's engine.
        ages: seconds a finished job of each status is kept (``done``, ``cancelled``,
            ``failed``); 0 or a missing status: kept for ever.
        interval_seconds: the period between rounds, in seconds.
        metrics: pruned jobs are counted in ``jobqueue_jobs_pruned_total{queue,status}``.
        batch_size: rows read per transaction (a window of the table in id order).

    Raises:
        ValueError: an age is negative, or is given for a status that is not final.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        ages: Mapping[JobStatus, float],
        interval_seconds: float,
        metrics: Metrics,
        batch_size: int = PRUNE_BATCH,
    ) -> None:
        for status, age in ages.items():
            if status not in retention.PRUNABLE or age < 0:
                raise ValueError(f"bad retention age {age!r} for {status.value!r}")
        self.engine = engine
        self.ages = {status: age for status, age in ages.items() if age > 0}
        self.interval_seconds = interval_seconds
        self.metrics = metrics
        self.batch_size = batch_size

    @property
    def enabled(self) -> bool:
        """False when every age is 0: nothing is ever pruned."""
        return bool(self.ages)

    async def prune_once(self) -> dict[JobStatus, int] | None:
        """One round: walk the table from its lowest id, a window of ``batch_size`` rows per
        transaction, deleting the due jobs, until no later row can be due.

        Returns:
            the jobs deleted per status (every status with an age, 0 when none was due), or
            None when another process was pruning (this round stopped at its first window
            that found the lock taken).

        Raises:
            DatabaseUnavailable: the database cannot be reached (what was deleted stays so).
        """
        pruned = dict.fromkeys(self.ages, 0)
        if not self.ages:
            return pruned
        after = 0
        while True:
            started = time.perf_counter()
            async with write(self.engine) as conn:
                window = await retention.prune_window(conn, after, self.ages, self.batch_size)
            if window is None:
                log.debug("prune_skipped", reason="another process is pruning")
                return None
            if window.deleted:
                self._record(window.deleted, started)
                for (_queue, status), jobs in window.deleted.items():
                    pruned[status] += jobs
            if window.done or window.last_id is None:
                return pruned
            after = window.last_id
            await asyncio.sleep(0)  # let claims and requests in between windows

    def _record(self, deleted: Mapping[tuple[str, JobStatus], int], started: float) -> None:
        by_status: dict[str, int] = {}
        for (queue, status), jobs in deleted.items():
            self.metrics.pruned.labels(queue, status.value).inc(jobs)
            by_status[status.value] = by_status.get(status.value, 0) + jobs
        log.info(
            "jobs_pruned",
            jobs=sum(by_status.values()),
            by_status=by_status,
            queues=len({queue for queue, _status in deleted}),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def run(self) -> None:
        """Prune every ``interval_seconds`` until cancelled; a database fault is logged and the
        next round tried on time. Anything else propagates (the supervisor restarts it). Not
        worth running when :attr:`enabled` is False (every age is 0): it would only sleep."""
        while True:
            try:
                await self.prune_once()
            except DatabaseUnavailable as exc:
                log.warning("prune_failed", error=str(exc))
            await asyncio.sleep(self.interval_seconds)
