"""The dispatcher: claims as many jobs as there are free slots and feeds the runners' queue.

It claims when woken (a local enqueue, a NOTIFY, a freed slot) and otherwise every
``poll_interval_seconds``, the safety net for notifications lost while the LISTEN connection was
down and for jobs whose ``run_at`` has come (saq's fetcher feeding an ``asyncio.Queue``).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import repository
from jobqueue.db.engine import HeldConnection
from jobqueue.errors import DatabaseUnavailable
from jobqueue.jobs import ClaimedJob
from jobqueue.metrics import Metrics
from jobqueue.worker.state import Holdings

log = structlog.get_logger(__name__)

MAX_CLAIM_BATCH = 100
"""The most jobs one claim statement takes, whatever the free slots."""


class Dispatcher:
    """Claims jobs for ``queues`` and puts them on ``ready``.

    Args:
        engine: the process's engine.
        queues: the queue names this process serves.
        holdings: the process's held jobs and slots.
        ready: the runners' queue (bounded by the concurrency).
        worker_id: this process's id, written into claimed rows.
        lease_seconds: the lease a claim takes, in seconds.
        poll_interval_seconds: the longest wait between two claims, in seconds.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        queues: list[str],
        holdings: Holdings,
        ready: asyncio.Queue[ClaimedJob],
        worker_id: str,
        lease_seconds: float,
        poll_interval_seconds: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.engine = engine
        self.queues = list(queues)
        self.holdings = holdings
        self.ready = ready
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.poll_interval_seconds = poll_interval_seconds
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.connection = HeldConnection(engine)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the claim in flight, if any, has been handed over.

        A claim is never cancelled half-way: its jobs would stay ``in_progress`` until their
        lease ran out instead of being released at shutdown.
        """
        self._stopping = True
        self._wakeup.set()

    def wake(self) -> None:
        """Claim at once instead of waiting for the poll (safe to call from any callback)."""
        self._wakeup.set()

    async def _wait_for_wakeup(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def run(self) -> None:
        """Claim until :meth:`stop`; a database fault is logged and retried after a poll."""
        while not self._stopping:
            # Cleared before the claim: a wake-up that arrives during it is not lost.
            self._wakeup.clear()
            try:
                more = await self._claim_round()
            except DatabaseUnavailable as exc:
                log.warning("claim_failed", error=str(exc))
                more = False
            except Exception:  # a loop boundary: log, and claim again after the poll interval
                log.exception("claim_error")
                more = False
            if not more:
                await self._wait_for_wakeup(self.poll_interval_seconds)

    async def _claim_round(self) -> bool:
        """Claim for each queue that has free slots, in turn.

        Returns:
            True when some queue gave all it was asked for and still has free slots (more of
            its jobs may be due: claim again at once). A queue that filled its slots is claimed
            for again when one frees (the completer claims with its writes).
        """
        more = False
        # Rotate the starting queue so that no queue starves the others of the database.
        self.queues.append(self.queues.pop(0))
        for queue in self.queues:
            wanted = self.reserve(queue)
            if wanted == 0:
                continue
            jobs: list[ClaimedJob] = []
            try:
                jobs = await self._claim(queue, wanted)
            finally:
                self.accept(queue, wanted, jobs)
            more = more or (len(jobs) == wanted and self.holdings.free_slots(queue) > 0)
        return more

    def reserve(self, queue: str) -> int:
        """Reserve the free slots of ``queue`` (at most ``MAX_CLAIM_BATCH``) for a claim.

        Returns:
            how many were reserved (0 when none are free or the dispatcher is stopping); pass
            the same number to :meth:`accept` with the claim's result, whatever happens.
        """
        if self._stopping:
            return 0
        wanted = min(self.holdings.free_slots(queue), MAX_CLAIM_BATCH)
        if wanted:
            self.holdings.reserve(queue, wanted)
        return wanted

    def plan(self) -> tuple[str, int] | None:
        """Reserve slots for a claim made by someone else (the completer, with its write): the
        queue with the most free slots. None when no slot is free."""
        queue = max(self.queues, key=self.holdings.free_slots)
        wanted = self.reserve(queue)
        return (queue, wanted) if wanted else None

    def accept(self, queue: str, wanted: int, jobs: list[ClaimedJob]) -> None:
        """Hand claimed jobs to the runners and give back the reserved slots they did not fill.

        If the claim filled every slot it asked for and slots are still free, more jobs may be
        due: the dispatcher is woken to claim them.
        """
        self.holdings.unreserve(queue, wanted - len(jobs))
        for job in jobs:
            self.holdings.take(job)
            self.ready.put_nowait(job)
            self.metrics.wait.labels(job.queue).observe(job.wait_seconds)
        if jobs and len(jobs) == wanted and self.holdings.free_slots(queue) > 0:
            self.wake()

    async def _claim(self, queue: str, limit: int) -> list[ClaimedJob]:
        async with self.connection.use() as conn:
            jobs = await repository.claim(
                conn,
                queue=queue,
                limit=limit,
                worker_id=self.worker_id,
                lease_seconds=self.lease_seconds,
            )
        for job in jobs:
            log.debug(
                "job_claimed", job_id=job.id, queue=job.queue, task=job.task, attempt=job.attempt
            )
        return jobs
