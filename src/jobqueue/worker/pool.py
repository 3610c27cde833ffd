"""The worker pool: owns the dispatcher, runners, completer, heartbeat, rescuer and listener.

``start()`` launches them as asyncio tasks; ``stop()`` is the graceful shutdown of DESIGN.md:
stop claiming, let the jobs in hand finish within the grace period, cancel the rest, write the
outcomes that are buffered, and release every job still held back to ``todo`` without counting
the attempt, so that after a clean stop no job of this process is left ``in_progress``.

A background task that ends with an error marks the pool failed (``/readyz`` then fails) and
stops it: nothing dies silently (procrastinate's side-loop monitor).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import repository
from jobqueue.db.engine import connect
from jobqueue.db.notifications import Notifications
from jobqueue.errors import DatabaseUnavailable
from jobqueue.jobs import ClaimedJob
from jobqueue.metrics import Metrics
from jobqueue.tasks.registry import TaskRegistry
from jobqueue.worker.completer import Completer
from jobqueue.worker.dispatcher import Dispatcher
from jobqueue.worker.heartbeat import heartbeat_loop
from jobqueue.worker.outcome import RetryPolicy
from jobqueue.worker.rescuer import rescuer_loop
from jobqueue.worker.runner import Runner
from jobqueue.worker.state import Holdings

log = structlog.get_logger(__name__)


def new_worker_id() -> str:
    """``host:pid:random``: unique per pool start, readable in ``jobs.worker_id``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class PoolConfig:
    """Pool settings; durations in seconds.

    Attributes:
        queues: slots per queue served, e.g. ``{"default": 10, "emails": 2}``; the pool runs
            as many runner tasks as there are slots in all.
        lease_seconds: a claim's lease; the heartbeat renews it every third.
        poll_interval_seconds: longest wait between claims when nothing wakes the dispatcher.
        shutdown_grace_seconds: how long ``stop`` lets running jobs finish.
        rescue_interval_seconds: period of the rescuer.
        retry: backoff for failed attempts.
        worker_id: written into claimed rows; fences every write.
        log_payloads: put each job's payload in its ``job_ran`` log event (debugging only).
    """

    queues: dict[str, int]
    lease_seconds: float = 30.0
    poll_interval_seconds: float = 1.0
    shutdown_grace_seconds: float = 30.0
    rescue_interval_seconds: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    worker_id: str = field(default_factory=new_worker_id)
    log_payloads: bool = False


class WorkerPool:
    """Runs jobs of ``config.queues`` from ``engine`` with the tasks in ``registry``.

    Args:
        engine: the process's engine.
        registry: the tasks this process can run.
        config: see :class:`PoolConfig`.
        notifications: the process's LISTEN connection; the pool subscribes to "jobs became
            runnable" and "cancel requested" messages (None: poll only, no remote cancel).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        registry: TaskRegistry,
        config: PoolConfig,
        notifications: Notifications | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.metrics = metrics or Metrics()
        self.concurrency = sum(config.queues.values())
        self.holdings = Holdings(dict(config.queues))
        self.ready: asyncio.Queue[ClaimedJob] = asyncio.Queue(maxsize=self.concurrency)
        self.dispatcher = Dispatcher(
            engine=engine,
            queues=list(config.queues),
            holdings=self.holdings,
            ready=self.ready,
            worker_id=config.worker_id,
            lease_seconds=config.lease_seconds,
            poll_interval_seconds=config.poll_interval_seconds,
            metrics=self.metrics,
        )
        self.completer = Completer(
            engine=engine,
            holdings=self.holdings,
            worker_id=config.worker_id,
            lease_seconds=config.lease_seconds,
            refill=self.dispatcher,
            metrics=self.metrics,
        )
        self.runner = Runner(
            ready=self.ready,
            registry=registry,
            holdings=self.holdings,
            deliver=self.completer.add,
            policy=config.retry,
            metrics=self.metrics,
            log_payloads=config.log_payloads,
        )
        self.holdings.on_queue_unblocked = self._on_queue_unblocked
        if notifications is not None:
            notifications.subscribe(repository.NOTIFY_QUEUES, self.wake)
            notifications.subscribe(repository.NOTIFY_CANCEL, self._on_cancel_notified)
            notifications.on_connect(self.dispatcher.wake)
        self.failure: str | None = None
        self._dispatcher_task: asyncio.Task[None] | None = None
        self._runner_tasks: list[asyncio.Task[None]] = []
        self._service_tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def healthy(self) -> bool:
        """False once a background task died or the pool was stopped."""
        return self.failure is None and not self._stopping

    def _on_queue_unblocked(self) -> None:
        # A full queue got a free slot. When its outcome waits for the completer, that write
        # claims for the slot; otherwise (shutdown, a dropped reservation) the dispatcher does.
        if not self.completer.pending:
            self.dispatcher.wake()

    def wake(self, queues: Sequence[str]) -> None:
        """Jobs became runnable on ``queues`` (``["*"]``: any): claim now if we serve one."""
        if "*" in queues or not set(queues).isdisjoint(self.config.queues):
            self.dispatcher.wake()

    def cancel(self, job_ids: Iterable[int]) -> None:
        """Cancel the attempts of those of ``job_ids`` that this process runs."""
        for job_id in job_ids:
            if self.runner.cancel(job_id):
                log.info("job_cancel_delivered", job_id=job_id)

    def _on_cancel_notified(self, items: list[str]) -> None:
        self.cancel(int(item) for item in items if item.isdigit())

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"jobqueue-{name}")
        task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        self.failure = f"{task.get_name()} stopped: {exc!r}"
        log.error("worker_task_died", task=task.get_name(), error=repr(exc), exc_info=exc)
        asyncio.get_running_loop().create_task(self.stop(), name="jobqueue-stop-after-failure")

    async def start(self) -> None:
        """Start every background task; returns at once."""
        cfg = self.config
        log.info("pool_starting", worker_id=cfg.worker_id, queues=cfg.queues)
        self._runner_tasks = [
            self._spawn(f"runner-{i}", self.runner.run()) for i in range(self.concurrency)
        ]
        self._service_tasks = [
            self._spawn("completer", self.completer.run()),
            self._spawn(
                "heartbeat",
                heartbeat_loop(
                    self.engine, self.holdings, cfg.worker_id, cfg.lease_seconds, self.cancel
                ),
            ),
            self._spawn(
                "rescuer",
                rescuer_loop(
                    self.engine, cfg.rescue_interval_seconds, self.dispatcher.wake, self.metrics
                ),
            ),
        ]
        self._dispatcher_task = self._spawn("dispatcher", self.dispatcher.run())

    async def stop(self) -> None:
        """Graceful shutdown (idempotent); see the module docstring for the steps.

        The final writes are shielded, so a second Ctrl-C cannot cut them off half-way.
        """
        if self._stopping:
            return
        self._stopping = True
        log.info("pool_stopping", held=len(self.holdings.jobs), busy=self.holdings.total_busy)
        self.dispatcher.stop()
        if self._dispatcher_task is not None:
            with contextlib.suppress(Exception):
                await self._dispatcher_task
        # Claimed but not started: no runner will take them now.
        while not self.ready.empty():
            self.holdings.free(self.ready.get_nowait())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.holdings.idle.wait(), self.config.shutdown_grace_seconds)
        await _cancel(self._runner_tasks)
        await asyncio.shield(self._write_and_release())
        await _cancel(self._service_tasks)
        await self.dispatcher.connection.close()
        await self.completer.connection.close()
        log.info("pool_stopped", worker_id=self.config.worker_id)

    async def _write_and_release(self) -> None:
        await self.completer.flush()
        held = [(job.id, job.attempt) for job in self.holdings.jobs.values()]
        if not held:
            return
        try:
            async with connect(self.engine) as conn:
                released = await repository.release(conn, held, self.config.worker_id)
        except DatabaseUnavailable as exc:
            log.error("release_failed", error=str(exc), jobs=len(held))
            return
        for job_id, attempt in held:
            self.holdings.forget(job_id)
            if job_id in released:
                log.info("job_released", job_id=job_id, attempt=attempt)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
