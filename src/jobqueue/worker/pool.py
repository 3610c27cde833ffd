"""The worker pool: the in-process client of ``leases/``.

It is made of one :class:`~jobqueue.worker.coordinator.Coordinator` (slots, held attempts,
outcome writes, claims), one runner per slot, a :class:`~jobqueue.worker.heartbeat.Heartbeat`
and a :class:`~jobqueue.worker.threads.SyncThreads` for plain tasks. It starts no task itself:
:meth:`WorkerPool.loops` names its loops, and the process's supervisor runs them (restarting one
that raises).

Shutdown (DESIGN.md): :meth:`drain` stops claiming and lets the jobs in hand finish within the
grace period, then stops the rest; once the supervisor has stopped the loops,
:meth:`final_writes` writes the buffered outcomes and releases every attempt still held back to
``todo`` without counting it, so that after a clean stop no job of this process is left
``in_progress``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.backoff import RetryPolicy
from jobqueue.db.engine import DRIVER_ERRORS
from jobqueue.errors import DatabaseUnavailable
from jobqueue.jobs import AttemptKey
from jobqueue.leases import (
    MAX_RESULT_BYTES,
    MAX_RESULT_DEPTH,
    HeartbeatResult,
    LeaseStore,
    PostgresLeases,
)
from jobqueue.metrics import Metrics
from jobqueue.notify import CancelRequested, Listener, QueuesRunnable
from jobqueue.tasks.registry import TaskRegistry
from jobqueue.worker.coordinator import Coordinator, CoordinatorConfig
from jobqueue.worker.heartbeat import Heartbeat
from jobqueue.worker.runner import Runner
from jobqueue.worker.threads import SyncThreads

log = structlog.get_logger(__name__)

FINAL_WRITE_ATTEMPTS = 3
"""Tries of the shutdown's outcome write before the rest is left to the rescuer."""


def new_worker_id() -> str:
    """``host:pid:random``: unique per pool start, readable in ``jobs.worker_id``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class PoolConfig:
    """Pool settings; durations in seconds.

    Attributes:
        queues: slots per queue served, e.g. ``{"default": 10, "emails": 2}``; the pool runs
            as many runners as there are slots in all, and as many sync-task threads.
        lease_seconds: a claim's lease; the heartbeat renews it every third.
        poll_interval_seconds: longest wait between claims when nothing wakes the coordinator.
        shutdown_grace_seconds: how long :meth:`WorkerPool.drain` lets running jobs finish.
        retry: backoff for failed attempts.
        max_result_bytes: a task's result over this many bytes of JSON fails its attempt.
        max_result_depth: a task's result nesting more levels of objects and arrays fails its
            attempt (``JOBQUEUE_MAX_PAYLOAD_DEPTH``).
        worker_id: written into claimed rows; fences every write.
        log_payloads: put each job's payload in its ``job_ran`` log event (debugging only).
    """

    queues: dict[str, int]
    lease_seconds: float = 30.0
    poll_interval_seconds: float = 1.0
    shutdown_grace_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_result_bytes: int = MAX_RESULT_BYTES
    max_result_depth: int = MAX_RESULT_DEPTH
    worker_id: str = field(default_factory=new_worker_id)
    log_payloads: bool = False


_FINAL_WRITE_FAULTS: tuple[type[Exception], ...] = (DatabaseUnavailable, *DRIVER_ERRORS)


class WorkerPool:
    """Runs jobs of ``config.queues`` with the tasks in ``registry``.

    Args:
        engine: the process's engine (used when ``store`` is not given).
        registry: the tasks this process can run; it claims jobs of no other task.
        config: see :class:`PoolConfig`.
        listener: the process's LISTEN connection; the pool subscribes to "jobs became
            runnable" and "cancel requested" (None: poll only; cancels reach it through the
            heartbeat).
        metrics: the process's metrics.
        store: the lease store (default: :class:`PostgresLeases` on ``engine``).
        on_finished: called with the ids of jobs this pool made final (wakes this process's
            long-poll readers at once).
    """

    def __init__(
        self,
        engine: AsyncEngine | None,
        registry: TaskRegistry,
        config: PoolConfig,
        listener: Listener | None = None,
        metrics: Metrics | None = None,
        store: LeaseStore | None = None,
        on_finished: Callable[[set[int]], None] | None = None,
    ) -> None:
        if store is None:
            assert engine is not None, "give an engine or a store"
            store = PostgresLeases(engine, config.worker_id)
        self.config = config
        self.store = store
        self.metrics = metrics or Metrics()
        self.concurrency = sum(config.queues.values())
        self.coordinator = Coordinator(
            store,
            CoordinatorConfig(
                queues=config.queues,
                tasks=tuple(registry.names()),
                lease_seconds=config.lease_seconds,
                poll_interval_seconds=config.poll_interval_seconds,
            ),
            self.metrics,
            on_finished=on_finished,
        )
        self.threads = SyncThreads(self.concurrency)
        self.runner = Runner(
            ready=self.coordinator.ready,
            registry=registry,
            deliver=self.coordinator.deliver,
            policy=config.retry,
            threads=self.threads,
            metrics=self.metrics,
            log_payloads=config.log_payloads,
            max_result_bytes=config.max_result_bytes,
            max_result_depth=config.max_result_depth,
        )
        self.heartbeat = Heartbeat(
            store,
            self.coordinator.held_keys,
            config.lease_seconds,
            self.on_heartbeat,
            on_tick=self.runner.abandon_overdue,
        )
        if listener is not None:
            listener.subscribe(QueuesRunnable, self.on_runnable)
            listener.subscribe(CancelRequested, self.on_cancel_requested)
            listener.on_connect(self.coordinator.wake)

    def loops(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """The pool's loops by name, for the supervisor: ``claim``, ``heartbeat`` and one
        ``runner-<n>`` per slot."""
        loops: dict[str, Callable[[], Awaitable[None]]] = {
            "claim": self.coordinator.run,
            "heartbeat": self.heartbeat.run,
        }
        for number in range(self.concurrency):
            loops[f"runner-{number}"] = self.runner.run
        return loops

    def busy_slots(self) -> tuple[int, int]:
        """``(busy, total)`` runner slots."""
        return self.coordinator.total_busy, self.concurrency

    # --- what it is told ---------------------------------------------------------------------

    def on_enqueued(self, due: Mapping[str, float]) -> None:
        """A local enqueue or retry committed: ``{queue: seconds until due}``."""
        self.coordinator.due(due)

    def on_runnable(self, event: QueuesRunnable) -> None:
        """Jobs became runnable (NOTIFY from another process, or a rescue)."""
        if event.covers(self.config.queues):
            self.coordinator.wake(None if event.queues is None else event.queues)

    def on_cancel_requested(self, event: CancelRequested) -> None:
        """Cancel requests: stop the attempts of those jobs that this process runs (``None``:
        left to the next heartbeat, which reports every requested cancel)."""
        if event.job_ids is not None:
            self.cancel(event.job_ids)

    def cancel(self, job_ids: set[int] | frozenset[int]) -> None:
        """Stop the current attempts of ``job_ids`` held here (running, or queued)."""
        buffered = {outcome.key for outcome in self.coordinator.pending}
        for key in list(self.coordinator.held):
            if key[0] in job_ids and key not in buffered:
                self.runner.cancel(key)
                log.info("job_cancel_delivered", job_id=key[0], attempt=key[1])

    def on_heartbeat(self, result: HeartbeatResult) -> None:
        """Stop the attempts whose lease is lost; cancel those whose cancel was requested."""
        for job in self.coordinator.lose(result.lost):
            self.runner.cancel(job.key)
        if result.cancel_requested:
            self.cancel({key[0] for key in result.cancel_requested})

    # --- shutdown ----------------------------------------------------------------------------

    async def drain(self) -> None:
        """Stop claiming; let the jobs in hand finish within the grace period; stop the rest
        (they stay held, to be released by :meth:`final_writes`)."""
        coordinator = self.coordinator
        coordinator.stopping = True
        log.info("pool_stopping", held=len(coordinator.held), busy=coordinator.total_busy)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(coordinator.idle.wait(), self.config.shutdown_grace_seconds)
        self.runner.abort()
        while not coordinator.ready.empty():
            coordinator.deliver(coordinator.ready.get_nowait(), None)
        # Aborted attempts end at their next await; a sync one is abandoned at once.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(coordinator.idle.wait(), 1.0)

    async def final_writes(self) -> None:
        """Write the buffered outcomes, then release every attempt still held (shielded by
        the caller: a second Ctrl-C must not cut them off). Gives up on the database after
        :data:`FINAL_WRITE_ATTEMPTS` failures: the rescuer then returns those jobs later. Any
        driver error counts as such a failure, not only a lost connection: behind pgbouncer a
        prepared statement may vanish with its server connection at shutdown
        (``InvalidSQLStatementNameError``), and a stop must still end cleanly."""
        coordinator = self.coordinator
        coordinator.stopping = True
        failures = 0
        while coordinator.pending and failures < FINAL_WRITE_ATTEMPTS:
            try:
                await coordinator.round()
            except _FINAL_WRITE_FAULTS as exc:
                failures += 1
                log.error("outcome_flush_failed", error=str(exc), pending=len(coordinator.pending))
        buffered = {outcome.key for outcome in coordinator.pending}
        held: list[AttemptKey] = [key for key in coordinator.held if key not in buffered]
        if held:
            try:
                released = await self.store.release(held)
            except _FINAL_WRITE_FAULTS as exc:
                log.error("release_failed", error=str(exc), jobs=len(held))
                released = set()
            for key in held:
                coordinator.held.pop(key, None)
                if key in released:
                    log.info("job_released", job_id=key[0], attempt=key[1])
        self.threads.close()
        await self.store.close()
        log.info("pool_stopped", worker_id=self.config.worker_id)
