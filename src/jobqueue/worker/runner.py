"""Runners: N tasks that take claimed jobs from the queue, run them and hand the outcome on.

A runner never writes to the database: it gives the outcome to the completer, which writes
outcomes in batches. Each attempt runs under ``asyncio.timeout(job.timeout_seconds)``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from jobqueue.jobs import ClaimedJob, Outcome
from jobqueue.tasks.registry import JobContext, TaskRegistry
from jobqueue.worker import outcome as classify
from jobqueue.worker.state import Holdings

log = structlog.get_logger(__name__)


class UnknownTaskAtRun(Exception):
    """A claimed job names a task this process does not have (another replica's modules?)."""


async def execute(job: ClaimedJob, registry: TaskRegistry, policy: classify.RetryPolicy) -> Outcome:
    """Run one attempt of ``job`` and classify how it ended.

    Cancellation (shutdown) propagates: the caller releases the job. Every other exception,
    ``SystemExit`` and ``KeyboardInterrupt`` raised by the task included, becomes a failed
    attempt, so no task can stop the pool.
    """
    entry = registry.get(job.task)
    if entry is None:
        known = ", ".join(registry.names())
        error = UnknownTaskAtRun(f"task {job.task!r} is not registered here (known: {known})")
        return classify.failed(job, error, policy)
    ctx = JobContext(job.id, job.task, job.queue, job.payload, job.attempt, job.max_attempts)
    deadline = asyncio.timeout(job.timeout_seconds)
    try:
        async with deadline:
            value = await entry.run(ctx)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        if isinstance(exc, TimeoutError) and deadline.expired():
            exc = TimeoutError(f"attempt exceeded timeout_seconds={job.timeout_seconds:g}")
        return classify.failed(job, exc, policy)
    return classify.succeeded(job, value, policy)


class Runner:
    """Runs jobs from ``ready`` until cancelled, handing each outcome to ``deliver``.

    Args:
        ready: the dispatcher's queue.
        registry: the tasks this process knows.
        holdings: slot accounting (a slot is freed once the outcome is handed on).
        deliver: the completer's ``add``.
        policy: retry backoff.
    """

    def __init__(
        self,
        *,
        ready: asyncio.Queue[ClaimedJob],
        registry: TaskRegistry,
        holdings: Holdings,
        deliver: Callable[[Outcome], None],
        policy: classify.RetryPolicy,
    ) -> None:
        self.ready = ready
        self.registry = registry
        self.holdings = holdings
        self.deliver = deliver
        self.policy = policy

    async def run(self) -> None:
        """Take and run jobs until cancelled; a cancelled job stays held (the pool releases it)."""
        while True:
            job = await self.ready.get()
            started = time.perf_counter()
            log.debug(
                "job_started", job_id=job.id, queue=job.queue, task=job.task, attempt=job.attempt
            )
            try:
                result = await execute(job, self.registry, self.policy)
            except asyncio.CancelledError:
                self.holdings.free()
                raise
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            self.deliver(result)
            self.holdings.free()
            log.info(
                "job_ran",
                job_id=job.id,
                queue=job.queue,
                task=job.task,
                attempt=job.attempt,
                outcome=str(result.status),
                duration_ms=duration_ms,
                error=result.error.partition("\n")[0] if result.error else None,
            )
