"""Runners: tasks that take claimed jobs from the coordinator's queue, run one attempt each and
hand the outcome back. A runner never writes to the database.

Each attempt runs in a task of its own, keyed by its attempt ``(job_id, attempt)``, so that one
attempt can be cancelled (a cancel request, a lost lease, shutdown) while the runner goes on.
An async task runs under ``asyncio.timeout(job.timeout_seconds)``; a plain function runs on the
pool's :class:`~jobqueue.worker.threads.SyncThreads`, its timeout counted from its start.

A task can refuse to stop (it catches ``CancelledError`` and goes on). The runner never lets one
hold its slot or the shutdown. It waits for an attempt on a future of its own, which the attempt
resolves as it ends (no extra callback hop per job, unlike ``asyncio.shield``) and which the
runner can cancel to stop waiting. :meth:`Runner.abandon_overdue` (called by the pool at each
heartbeat) abandons an attempt still running :data:`STOP_GRACE_SECONDS` after it was told to stop
or after its timeout passed: its job gets its outcome (``failed`` with a ``TimeoutError``, or
``cancelled``), its slot is freed, and the coroutine, which nothing can kill, runs on detached
(logged ``attempt_abandoned``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from jobqueue import leases
from jobqueue.backoff import RetryPolicy
from jobqueue.jobs import AttemptKey, ClaimedJob, Outcome
from jobqueue.metrics import Metrics
from jobqueue.tasks.registry import JobContext, TaskRegistry
from jobqueue.worker.threads import SyncThreads, ThreadTimeout

log = structlog.get_logger(__name__)

STOP_GRACE_SECONDS = 5.0
"""How long an attempt told to stop (a cancel request, a lost lease, shutdown, its timeout) has
to end before the runner abandons it, in seconds."""


class UnknownTaskAtRun(Exception):
    """A claimed job names a task this process does not have (its registry changed?)."""


async def execute(
    job: ClaimedJob,
    registry: TaskRegistry,
    policy: RetryPolicy,
    threads: SyncThreads,
    max_result_bytes: int = leases.MAX_RESULT_BYTES,
    max_result_depth: int = leases.MAX_RESULT_DEPTH,
) -> Outcome:
    """Run one attempt of ``job`` and classify how it ended (``leases`` classifier).

    Cancellation of the task running this coroutine (a cancel request, a lost lease, shutdown)
    propagates: the caller decides what it means. Every other exception, ``SystemExit`` and
    ``KeyboardInterrupt`` raised by the task included, becomes a failed attempt, so no task can
    stop the pool. So does a ``CancelledError`` that the task raises on its own (e.g. from a
    cancelled future of its own) while nobody cancelled this attempt.
    """
    entry = registry.get(job.task)
    if entry is None:
        known = ", ".join(registry.names())
        error = UnknownTaskAtRun(f"task {job.task!r} is not registered here (known: {known})")
        return leases.failed(job, error, policy)
    ctx = JobContext(job.id, job.task, job.queue, job.payload, job.attempt, job.max_attempts)
    # The async path awaits the task's coroutine directly (no extra frame per job: the hot path).
    deadline = asyncio.timeout(job.timeout_seconds) if entry.is_async else None
    try:
        if deadline is not None:
            async with deadline:
                value = await entry.function(ctx)
        else:
            value = await threads.run(entry.function, ctx, job.timeout_seconds)
    except asyncio.CancelledError as exc:
        current = asyncio.current_task()
        if current is None or current.cancelling():
            raise
        return leases.failed(job, exc, policy)
    except BaseException as exc:
        expired = deadline is not None and deadline.expired() and isinstance(exc, TimeoutError)
        if expired or isinstance(exc, ThreadTimeout):
            exc = TimeoutError(f"attempt exceeded timeout_seconds={job.timeout_seconds:g}")
        return leases.failed(job, exc, policy)
    if deadline is not None and deadline.expired():
        # The task swallowed the cancellation of its timeout and returned anyway: it timed out.
        overran = TimeoutError(
            f"attempt exceeded timeout_seconds={job.timeout_seconds:g} and ignored being cancelled"
        )
        return leases.failed(job, overran, policy)
    return leases.succeeded(job, value, policy, max_result_bytes, max_result_depth)


@dataclass(slots=True)
class RunningAttempt:
    """One attempt the runner waits for.

    Attributes:
        task: the asyncio task running it.
        job: its claimed job.
        started: when it started, the runner's clock (monotonic seconds).
        done: resolved by the attempt as it ends (its outcome; None: it ended cancelled); the
            runner awaits this, and cancels it to abandon the attempt.
        told_to_stop: when it was told to stop (the runner's clock) and why (``cancelled`` or
            ``timeout``); None while it was not.
    """

    task: asyncio.Task[None]
    job: ClaimedJob
    started: float
    done: asyncio.Future[Outcome | None]
    told_to_stop: tuple[float, str] | None = None


class Runner:
    """Runs jobs from ``ready`` until cancelled, handing each end to ``deliver``.

    Args:
        ready: the coordinator's queue of claimed jobs.
        registry: the tasks this process has.
        deliver: ``(job, outcome)``; the outcome is ``None`` when shutdown stopped the attempt
            (the job stays held, to be released).
        policy: retry backoff.
        threads: where plain functions run.
        clock: monotonic seconds.
        max_result_bytes: a larger result fails its attempt, bytes of JSON.
        max_result_depth: a result nesting deeper fails its attempt, levels of objects and
            arrays.
    """

    def __init__(
        self,
        *,
        ready: asyncio.Queue[ClaimedJob],
        registry: TaskRegistry,
        deliver: Callable[[ClaimedJob, Outcome | None], None],
        policy: RetryPolicy,
        threads: SyncThreads,
        metrics: Metrics | None = None,
        log_payloads: bool = False,
        clock: Callable[[], float] = time.monotonic,
        max_result_bytes: int = leases.MAX_RESULT_BYTES,
        max_result_depth: int = leases.MAX_RESULT_DEPTH,
    ) -> None:
        self.ready = ready
        self.registry = registry
        self.deliver = deliver
        self.policy = policy
        self.threads = threads
        self.metrics = metrics or Metrics()
        self.log_payloads = log_payloads
        self.clock = clock
        self.max_result_bytes = max_result_bytes
        self.max_result_depth = max_result_depth
        self.running: dict[AttemptKey, RunningAttempt] = {}
        self.stop_before_start: set[AttemptKey] = set()
        self.aborting = False
        self._abandoned: dict[AttemptKey, str] = {}  # why each abandoned attempt was stopped

    def cancel(self, key: AttemptKey, why: str = "cancelled") -> bool:
        """Stop attempt ``key``: cancel it if it runs, or make it end at once when it starts.

        Args:
            why: ``cancelled`` (a cancel request or a lost lease) or ``timeout``: what its job
                records if the attempt has to be abandoned.

        Returns:
            True when the attempt runs now (False: it will stop when it starts).
        """
        attempt = self.running.get(key)
        if attempt is None:
            self.stop_before_start.add(key)
            return False
        attempt.task.cancel()
        if attempt.told_to_stop is None:
            attempt.told_to_stop = (self.clock(), why)
        return True

    def running_keys(self, job_id: int) -> list[AttemptKey]:
        """The attempts of ``job_id`` running now (two after a self-rescue)."""
        return [key for key in self.running if key[0] == job_id]

    def abort(self) -> None:
        """Shutdown: cancel every running attempt; their jobs are released, not failed."""
        self.aborting = True
        for key in list(self.running):
            self.cancel(key)

    def abandon_overdue(self, grace_seconds: float = STOP_GRACE_SECONDS) -> list[AttemptKey]:
        """Tell attempts past their timeout (plus ``grace_seconds``) to stop, and stop waiting
        for the ones told to stop more than ``grace_seconds`` ago (see the module docstring).

        Returns:
            the attempts abandoned now.
        """
        now = self.clock()
        abandoned: list[AttemptKey] = []
        for key, attempt in list(self.running.items()):
            overdue = now > attempt.started + attempt.job.timeout_seconds + grace_seconds
            if attempt.told_to_stop is None and overdue:
                self.cancel(key, "timeout")
            told = attempt.told_to_stop
            if told is not None and now > told[0] + grace_seconds and not attempt.done.done():
                self._abandoned[key] = told[1]
                attempt.done.cancel()
                abandoned.append(key)
        return abandoned

    async def run(self) -> None:
        """Take and run jobs until cancelled (one runner per slot)."""
        while True:
            job = await self.ready.get()
            await self.run_one(job)

    async def run_one(self, job: ClaimedJob) -> None:
        """Run one attempt of ``job`` and deliver its end (exactly once, whatever happens)."""
        key = job.key
        if key in self.stop_before_start or self.aborting:
            self.stop_before_start.discard(key)
            self.deliver(job, None if self.aborting else leases.cancelled(job))
            return
        started = time.perf_counter()
        # Cancelling the runner, or abandoning the attempt, ends this wait at once, whether or
        # not the attempt itself honours its cancellation.
        done: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._attempt(job, done), name=f"jobqueue-attempt-{job.id}-{job.attempt}"
        )
        self.running[key] = RunningAttempt(task, job, self.clock(), done)
        outcome: Outcome | None = None
        try:
            outcome = await done
            if outcome is None:  # the attempt ended cancelled
                outcome = self._stopped(job, key)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                task.cancel()
                raise  # the runner itself is being cancelled (the finally delivers None)
            outcome = self._stopped(job, key)  # abandoned
        except Exception as exc:  # a bug of ours, not the task's: still end the attempt
            log.exception("attempt_error", job_id=job.id, attempt=job.attempt)
            outcome = leases.failed(job, exc, self.policy)
        finally:
            del self.running[key]
            self.deliver(job, outcome)
        duration = time.perf_counter() - started
        self.metrics.duration.labels(job.queue, job.task).observe(duration)
        if outcome is not None:
            log.info(
                "job_ran",
                job_id=job.id,
                queue=job.queue,
                task=job.task,
                attempt=job.attempt,
                outcome=str(outcome.status),
                duration_ms=round(duration * 1000, 3),
                error_type=outcome.error_type,
                **({"payload": job.payload} if self.log_payloads else {}),
            )

    async def _attempt(self, job: ClaimedJob, done: asyncio.Future[Outcome | None]) -> None:
        """Run the attempt and resolve ``done`` with its outcome (None: it ended cancelled; an
        exception: a bug of ours), unless the runner stopped waiting for it."""
        try:
            outcome = await execute(
                job,
                self.registry,
                self.policy,
                self.threads,
                self.max_result_bytes,
                self.max_result_depth,
            )
        except asyncio.CancelledError:
            if not done.done():
                done.set_result(None)
            raise
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)
            return
        if not done.done():
            done.set_result(outcome)

    def _stopped(self, job: ClaimedJob, key: AttemptKey) -> Outcome | None:
        """The outcome of an attempt that ended cancelled, or that was abandoned."""
        why = self._abandoned.pop(key, None)
        if why is not None:
            log.warning(
                "attempt_abandoned",
                job_id=job.id,
                attempt=job.attempt,
                task=job.task,
                reason=why,
                detail="the task ignored being cancelled: it runs on, detached; its slot is free",
            )
        if self.aborting:
            return None
        if why == "timeout":
            error = TimeoutError(
                f"attempt exceeded timeout_seconds={job.timeout_seconds:g} and ignored being "
                "cancelled"
            )
            return leases.failed(job, error, self.policy)
        return leases.cancelled(job)
