"""Running one leased job: its attempt in an asyncio task of its own under its timeout
(plain functions on the thread pool), then its report; its slot is free once the attempt has
ended."""

from __future__ import annotations

import asyncio
import logging

from jobqueue.client._worker_outcomes import Cancelled, Outcome, result_outcome
from jobqueue.client._worker_protocols import LeaseLike
from jobqueue.client._worker_reports import Reporter
from jobqueue.client._worker_state import (
    CANCEL_REQUESTED,
    LOST,
    SHUTDOWN,
    TIMEOUT,
    Held,
    WorkerState,
    log,
    log_job,
    resolve,
)
from jobqueue.client._worker_tasks import RemoteTasks, TaskContext, UnknownTask
from jobqueue.client._worker_threads import Threads, ThreadTimeout


class Attempts:
    """Starts and runs the attempts of the leases a worker holds (``state.held``), with the
    tasks of ``tasks``; plain functions run on ``threads`` (made again by each run)."""

    def __init__(self, state: WorkerState, tasks: RemoteTasks, reporter: Reporter) -> None:
        self.state = state
        self.tasks = tasks
        self.reporter = reporter
        self.threads = Threads(state.config.concurrency)

    def start(self, lease: LeaseLike, received: float) -> None:
        """Hold ``lease`` (got at ``received``, the loop's clock) and run its job in a task of
        its own."""
        loop = asyncio.get_running_loop()
        job = lease.job
        context = TaskContext(
            job.id, job.queue, job.task, job.attempt, job.max_attempts, job.timeout_seconds
        )
        held = Held(lease, context, received + lease.lease_seconds, received, loop.create_future())
        self.state.held[lease.token] = held
        self.state.running += 1  # until its attempt ends (the handler's first step may come later)
        self.state.has_held.set()
        log_job("job_started", held, logging.DEBUG)
        held.handler = asyncio.create_task(
            self._handle(held), name=f"jobqueue-job-{job.id}-{job.attempt}"
        )

    # --- one job -------------------------------------------------------------------------

    async def _handle(self, held: Held) -> None:
        """Run the attempt, then report its outcome (or drop it, or leave it to be
        released). Its slot is free once the attempt has ended; its lease is held until the
        report is answered."""
        token = held.lease.token
        try:
            try:
                outcome = await self._outcome_of(held)
            finally:
                self.state.running -= 1
                self.state.slot_freed.set()
            if held.stop_reason == LOST:
                log_job("job_dropped", held, detail="lease lost: never reported")
                return
            if outcome is None:
                if held.stop_reason == SHUTDOWN:
                    self.state.to_release.append(token)
                    log_job("job_stopped", held, logging.INFO, detail="to be released")
                    return
                outcome = self._stopped_outcome(held)
            held.reporting = True
            await self.reporter.report(held, outcome)
        except asyncio.CancelledError:
            if not held.reporting:
                self.state.to_release.append(token)
            raise
        except Exception:  # a bug of ours: the job is left to its lease, the worker goes on
            log.exception("job_error job_id=%d", held.context.job_id)
        finally:
            held.context.cancel_event.set()  # an abandoned plain function may still look
            del self.state.held[token]
            self.state.slot_freed.set()
            if not self.state.held:
                self.state.has_held.clear()

    def _stopped_outcome(self, held: Held) -> Outcome:
        """The outcome of an attempt stopped before it ended (a cancel request, or a timeout
        it ignored)."""
        timeout = held.context.timeout_seconds
        if held.stop_reason == CANCEL_REQUESTED:
            return Outcome(error=Cancelled("cancel requested while the job ran"))
        if held.stop_reason == TIMEOUT:
            message = f"attempt exceeded timeout_seconds={timeout:g} and ignored being cancelled"
            return Outcome(error=TimeoutError(message))
        return Outcome(error=asyncio.CancelledError("the attempt ended cancelled"))

    async def _outcome_of(self, held: Held) -> Outcome | None:
        """Run the attempt; its outcome, or None when it ended cancelled or was abandoned."""
        job = held.lease.job
        attempt = asyncio.create_task(self._call(held), name=f"jobqueue-attempt-{job.id}")
        held.attempt = attempt
        attempt.add_done_callback(lambda _: resolve(held.ended))
        if held.stop_reason is not None:  # told to stop before it started
            attempt.cancel()
        try:
            await held.ended
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        if not attempt.done():
            log_job("attempt_abandoned", held, reason=held.stop_reason)
            return None
        if attempt.cancelled():
            return None
        error = attempt.exception()
        return Outcome(error=error) if error is not None else attempt.result()

    async def _call(self, held: Held) -> Outcome:
        """The task's function on the job's payload, under its timeout: how it ended.

        Cancellation of this attempt propagates; every other exception (``SystemExit`` and
        ``KeyboardInterrupt`` raised by the task included) is a failed attempt, as is a
        ``CancelledError`` the task raises on its own.
        """
        job, context = held.lease.job, held.context
        entry = self.tasks.get(job.task)
        if entry is None:
            return Outcome(error=UnknownTask(f"task {job.task!r} is not registered here"))
        args = (job.payload, context) if entry.wants_context else (job.payload,)
        timeout = job.timeout_seconds
        deadline = asyncio.timeout(timeout) if entry.is_async else None
        try:
            if deadline is not None:
                async with deadline:
                    value = await entry.function(*args)
            else:
                value = await self.threads.run(lambda: entry.function(*args), timeout)
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is None or current.cancelling():
                raise
            return Outcome(error=exc)
        except BaseException as exc:
            expired = deadline is not None and deadline.expired()
            if (expired and isinstance(exc, TimeoutError)) or isinstance(exc, ThreadTimeout):
                context.cancel_event.set()
                exc = TimeoutError(f"attempt exceeded timeout_seconds={timeout:g}")
            return Outcome(error=exc)
        if deadline is not None and deadline.expired():
            message = f"attempt exceeded timeout_seconds={timeout:g} and ignored being cancelled"
            return Outcome(error=TimeoutError(message))
        return result_outcome(value)
