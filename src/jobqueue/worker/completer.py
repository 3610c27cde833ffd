"""The completer: buffers attempt outcomes and writes each batch with one fenced UPDATE.

There is no timer: while one write is in flight, the outcomes that arrive meanwhile pile up and
go together in the next (group commit), so a lone job is written at once and a busy pool writes
hundreds per statement. Outcomes stay buffered, and their leases held, until the write succeeds.

Each outcome freed a runner slot, so a write also claims jobs for the free slots in the same
statement (``finish_and_claim``): in steady state a busy pool makes one round trip per batch,
not two. The dispatcher still claims on wake-ups (NOTIFY, local enqueue, the poll).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import repository
from jobqueue.db.engine import HeldConnection
from jobqueue.errors import DatabaseUnavailable
from jobqueue.jobs import ClaimedJob, Outcome
from jobqueue.metrics import Metrics
from jobqueue.worker.state import Holdings

log = structlog.get_logger(__name__)

MAX_WRITE_BATCH = 400
"""Outcomes per statement; 400 ids keep the "finished" NOTIFY payload under 8000 bytes."""
RETRY_DELAY_SECONDS = 0.5


class Refill(Protocol):
    """Who reserves slots for the claim a write carries, and takes the jobs (the dispatcher)."""

    def plan(self) -> tuple[str, int] | None:
        """Reserve free slots: ``(queue, how_many)``, or None when none are free."""
        ...

    def accept(self, queue: str, wanted: int, jobs: list[ClaimedJob]) -> None:
        """Take the claimed jobs; give back the reserved slots they did not fill."""
        ...


class Completer:
    """Writes outcomes for ``worker_id``.

    Args:
        engine: the process's engine.
        holdings: written (or lease-lost) jobs are forgotten there.
        worker_id: the fence: only rows this worker holds are written.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        holdings: Holdings,
        worker_id: str,
        lease_seconds: float = 30.0,
        refill: Refill | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.engine = engine
        self.holdings = holdings
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.refill = refill
        self.pending: list[Outcome] = []
        self._added = asyncio.Event()
        # One writer at a time: the loop and a shutdown flush must not write one batch twice.
        self._writing = asyncio.Lock()
        self.connection = HeldConnection(engine)

    def add(self, outcome: Outcome) -> None:
        """Queue an outcome for writing (no I/O; called by runners)."""
        self.pending.append(outcome)
        self._added.set()

    async def run(self) -> None:
        """Write until cancelled; a failed write is retried after ``RETRY_DELAY_SECONDS``."""
        while True:
            await self._added.wait()
            self._added.clear()
            while self.pending:
                try:
                    await self.write_batch()
                except DatabaseUnavailable as exc:
                    log.warning("outcome_write_failed", error=str(exc), pending=len(self.pending))
                    await asyncio.sleep(RETRY_DELAY_SECONDS)
                except Exception:
                    # A loop boundary (a deadlock, a serialization failure, a bug): the outcomes
                    # stay pending, their leases held by the heartbeat, and the write is retried.
                    log.exception("outcome_write_error", pending=len(self.pending))
                    await asyncio.sleep(RETRY_DELAY_SECONDS)

    async def write_batch(self) -> None:
        """Write up to ``MAX_WRITE_BATCH`` of the oldest pending outcomes.

        Raises:
            DatabaseUnavailable: nothing was removed from ``pending``.
        """
        async with self._writing:
            batch = self.pending[:MAX_WRITE_BATCH]
            if not batch:
                return
            plan = self.refill.plan() if self.refill is not None else None
            claimed: list[ClaimedJob] = []
            try:
                async with self.connection.use() as conn:
                    if plan is None:
                        written = await repository.finish(conn, batch, self.worker_id)
                    else:
                        written, claimed = await repository.finish_and_claim(
                            conn,
                            batch,
                            self.worker_id,
                            queue=plan[0],
                            limit=plan[1],
                            lease_seconds=self.lease_seconds,
                        )
            finally:
                if plan is not None and self.refill is not None:
                    self.refill.accept(plan[0], plan[1], claimed)
            # Runners only append and only the lock holder removes: the batch is still the head.
            del self.pending[: len(batch)]
        finished: list[tuple[str, str, str]] = []
        for outcome in batch:
            job = self.holdings.jobs.get(outcome.job_id)
            status = written.get(outcome.job_id)
            if job is not None and status is not None:
                finished.append((job.queue, job.task, "retried" if status == "todo" else status))
            self.holdings.forget(outcome.job_id)
            if status is None:
                log.warning(
                    "lease_lost",
                    job_id=outcome.job_id,
                    attempt=outcome.attempt,
                    dropped_outcome=str(outcome.status),
                )
        self.metrics.count_finished(finished)

    async def flush(self, attempts: int = 3) -> None:
        """Write everything pending (shutdown); gives up after ``attempts`` failed writes."""
        failures = 0
        while self.pending and failures < attempts:
            try:
                await self.write_batch()
            except Exception as exc:
                failures += 1
                log.error("outcome_flush_failed", error=str(exc), pending=len(self.pending))
                await asyncio.sleep(RETRY_DELAY_SECONDS)
