"""What a remote worker's parts share: the leases it holds (:class:`Held`), the slots, the
stop reasons, and one-line logging (logger ``jobqueue.client.worker``)."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

from jobqueue.client._errors import JobQueueClientError
from jobqueue.client._worker_outcomes import Outcome
from jobqueue.client._worker_protocols import SERVICE_DOWN, LeaseLike
from jobqueue.client._worker_tasks import TaskContext

log = logging.getLogger("jobqueue.client.worker")

STOP_GRACE_SECONDS = 5.0
"""How long an attempt told to stop (a cancel request, a lost lease, its timeout) has to end
before the worker stops waiting for it, seconds (the in-process runner's rule)."""

MAX_BATCH_ITEMS = 1000
"""The most reports one request carries (the service's limit of tokens per batch)."""
MAX_BATCH_CHARACTERS = 1_048_576
"""About the most characters of results (or messages and tracebacks) one report request
carries, far below the service's ``JOBQUEUE_MAX_REQUEST_BYTES``; a larger report goes alone."""

LEASE_LOST = "lease_lost"
LOST = "lost"
CANCEL_REQUESTED = "cancel_requested"
TIMEOUT = "timeout"
SHUTDOWN = "shutdown"


@dataclass(eq=False)
class Held:
    """A lease this worker holds, from the lease to the end of its report.

    ``expires`` is the lease's end on the event loop's clock, counted from the answer that
    gave it or the request that last extended it. ``stop_reason``
    is why the attempt was told to stop (None: it was not). ``ended`` resolves when the
    attempt ends, or when the worker stops waiting for an attempt told to stop (cheaper per
    job than ``asyncio.wait``).
    """

    lease: LeaseLike
    context: TaskContext
    expires: float
    started: float
    ended: asyncio.Future[None]
    stop_reason: str | None = None
    reporting: bool = False
    attempt: asyncio.Task[Outcome] | None = None
    handler: asyncio.Task[None] | None = None


class WorkerConfig(Protocol):
    """The settings of a :class:`~jobqueue.client.Worker` its parts read (on each use: a test
    may change a tunable after the worker is made)."""

    name: str
    host: str
    queues: list[str]
    concurrency: int
    lease_seconds: float
    wait_seconds: float
    backoff_min_seconds: float
    backoff_max_seconds: float
    drain_pause_seconds: float
    stop_grace_seconds: float


class WorkerState:
    """The leases a worker holds, by token, and the slots they take; shared by its leasing,
    attempts, heartbeats, reports and shutdown."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.held: dict[str, Held] = {}
        self.running = 0
        # Leases held, running or waiting for their report: at most twice the slots (so that
        # leasing goes on while reports are on their way) and one heartbeat's worth.
        concurrency = config.concurrency
        self.max_held = max(concurrency, min(2 * concurrency, MAX_BATCH_ITEMS))
        self.to_release: list[str] = []
        self.drain_until = 0.0
        self.new_events()

    def new_events(self) -> None:
        """Make the events again (each run: an event belongs to the loop that first waits on
        it)."""
        self.hurry = asyncio.Event()
        self.slot_freed = asyncio.Event()
        self.has_held = asyncio.Event()

    def free_slots(self) -> int:
        """Jobs this worker may lease now: slots not running a job, while fewer than
        ``max_held`` leases wait for their report."""
        return min(self.config.concurrency - self.running, self.max_held - len(self.held))

    async def wait_for_slot(self) -> None:
        while self.free_slots() <= 0:
            self.slot_freed.clear()
            await self.slot_freed.wait()

    def pause_leasing(self) -> None:
        loop = asyncio.get_running_loop()
        pause_seconds = self.config.drain_pause_seconds
        if self.drain_until <= loop.time():
            log.info("service_draining pause_seconds=%g", pause_seconds)
        self.drain_until = loop.time() + pause_seconds

    def handlers(self) -> set[asyncio.Task[None]]:
        return {h.handler for h in self.held.values() if h.handler is not None}

    def stop_attempt(self, held: Held, reason: str) -> None:
        """Tell ``held``'s attempt to stop for ``reason`` (cancel it, set its context's
        ``cancel_event``); stop waiting for it ``stop_grace_seconds`` later. ``lost``
        overrides any earlier reason (its outcome is never reported); others keep the first."""
        if held.stop_reason is not None and reason != LOST:
            return
        first = held.stop_reason is None
        held.stop_reason = reason
        held.context.cancel_event.set()
        if held.reporting or not first:
            return
        if held.attempt is not None:
            held.attempt.cancel()
        grace = self.config.stop_grace_seconds
        asyncio.get_running_loop().call_later(grace, resolve, held.ended)


def jittered(seconds: float) -> float:
    """``seconds`` less up to half of it, at random (so that workers do not retry in step)."""
    return seconds * random.uniform(0.5, 1.0)


def resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text[:300]


def log_failure(event: str, exc: BaseException, **values: Any) -> None:
    """A warning for the service being down; an error with the traceback for anything else."""
    pairs = {**values, "error": describe(exc)}
    if "retry_in" in pairs:
        pairs["retry_in"] = f"{pairs['retry_in']:.2f}"
    text = " ".join(f"{k}={v}" for k, v in pairs.items())
    if isinstance(exc, SERVICE_DOWN):
        log.warning("%s %s", event, text)
    elif isinstance(exc, JobQueueClientError):
        log.error("%s %s", event, text)
    else:  # a bug, ours or the client's
        log.error("%s %s", event, text, exc_info=exc)


def log_job(event: str, held: Held, level: int = logging.WARNING, **values: Any) -> None:
    """One line ``event job_id=… queue=… task=… attempt=… key=value…``."""
    if not log.isEnabledFor(level):
        return
    context = held.context
    pairs = {
        "job_id": context.job_id,
        "queue": context.queue,
        "task": context.task,
        "attempt": context.attempt,
        **values,
    }
    text = " ".join(f"{k}={v}" for k, v in pairs.items())
    log.log(level, "%s %s", event, text)
