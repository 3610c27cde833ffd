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
from jobqueue.metrics import Metrics
from jobqueue.tasks.registry import JobContext, TaskRegistry
from jobqueue.worker import outcome as classify
from jobqueue.worker.state import Holdings

log = structlog.get_logger(__name__)


class UnknownTaskAtRun(Exception):
    """A claimed job names a task this process does not have (another replica's modules?)."""


async def execute(job: ClaimedJob, registry: TaskRegistry, policy: classify.RetryPolicy) -> Outcome:
    """Run one attempt of ``job`` and classify how it ended.

    Cancellation (shutdown or a cancel request: either cancels the task running this
    coroutine) propagates: the caller releases or cancels the job. Every other exception,
    ``SystemExit`` and ``KeyboardInterrupt`` raised by the task included, becomes a failed
    attempt, so no task can stop the pool. So does a ``CancelledError`` that the task raises
    on its own (e.g. from a cancelled future of its own) while nobody cancelled this attempt:
    it is the task's failure, not a cancel request and not a shutdown.
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
    except asyncio.CancelledError as exc:
        current = asyncio.current_task()
        if current is None or current.cancelling():
            raise
        return classify.failed(job, exc, policy)
    except BaseException as exc:
        if isinstance(exc, TimeoutError) and deadline.expired():
            exc = TimeoutError(f"attempt exceeded timeout_seconds={job.timeout_seconds:g}")
        return classify.failed(job, exc, policy)
    return classify.succeeded(job, value, policy)


class Runner:
    """Runs jobs from ``ready`` until cancelled, handing each outcome to ``deliver``.

    Each attempt runs in a task of its own, so that :meth:`cancel` can stop one job (a cancel
    request) while the runner goes on; cancelling the runner itself (shutdown) cancels the
    attempt too, and the job stays held for the pool to release.

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
        metrics: Metrics | None = None,
        log_payloads: bool = False,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.log_payloads = log_payloads
        self.ready = ready
        self.registry = registry
        self.holdings = holdings
        self.deliver = deliver
        self.policy = policy
        self.running: dict[int, asyncio.Task[Outcome]] = {}
        self._cancel_before_start: set[int] = set()

    def cancel(self, job_id: int) -> bool:
        """Cancel the attempt of ``job_id`` if this process holds the job.

        Returns:
            True when the job is held here (running now, or queued and cancelled at start).
        """
        attempt = self.running.get(job_id)
        if attempt is not None:
            attempt.cancel()
            return True
        if job_id in self.holdings.jobs:
            self._cancel_before_start.add(job_id)
            return True
        return False

    async def run(self) -> None:
        """Take and run jobs until cancelled."""
        while True:
            job = await self.ready.get()
            started = time.perf_counter()
            try:
                result = await self._attempt(job)
            except asyncio.CancelledError:
                self.holdings.free(job)
                raise
            duration = time.perf_counter() - started
            self.deliver(result)
            self.holdings.free(job)
            self.metrics.duration.labels(job.queue, job.task).observe(duration)
            log.info(
                "job_ran",
                job_id=job.id,
                queue=job.queue,
                task=job.task,
                attempt=job.attempt,
                outcome=str(result.status),
                duration_ms=round(duration * 1000, 3),
                error_type=result.error_type,
                **({"payload": job.payload} if self.log_payloads else {}),
            )

    async def _attempt(self, job: ClaimedJob) -> Outcome:
        if job.id in self._cancel_before_start:
            self._cancel_before_start.discard(job.id)
            return classify.cancelled(job)
        attempt = asyncio.create_task(execute(job, self.registry, self.policy))
        self.running[job.id] = attempt
        try:
            return await attempt
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the runner itself is being cancelled: shutdown
            return classify.cancelled(job)
        finally:
            del self.running[job.id]
