"""The process registry: every process keeps a row in ``processes`` saying who it is (host,
pid, role, version), which queues it serves with how many slots, how many are busy, and which
tasks it can run, renewed every ``interval_seconds``.

What it is for:

- ``GET /workers`` and the dashboard's "Processes" page list the live processes, and the
  overview's busy slots are their sum;
- a job whose task no live process has stays ``todo`` (a process claims only jobs of its own
  tasks), and the metrics and the dashboard count such jobs (``jobqueue_jobs_without_worker``);
- enqueue accepts a task or queue that any live process has (:class:`~jobqueue.service.Catalog`
  is refreshed from here), so an API-only process, or an old replica in a rolling deploy,
  accepts jobs for tasks only newer workers run.

Rows not renewed for ``SILENT_SECONDS`` belong to dead processes; any process deletes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import registry
from jobqueue.db.engine import write
from jobqueue.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)

ANNOUNCE_SECONDS = 10.0
"""How often a process renews its row, in seconds."""

SILENT_SECONDS = 60.0
"""A row not renewed for this long is deleted, in seconds."""

CatalogListener = Callable[[frozenset[str], frozenset[str], frozenset[str]], None]
"""Told ``(tasks, queues)`` of the live processes after each renewal."""


class ProcessRegistry:
    """Keeps this process's row fresh, and tells ``on_catalog`` what the live processes run.

    Args:
        engine: the process's engine.
        info: what this process announces.
        busy: returns this process's busy slots now (0 without workers).
        finished: returns the jobs this process ended per minute (``{"<unix minute>": [done,
            failed]}``: ``Metrics.throughput.snapshot``), for the dashboard's chart.
        on_catalog: told the live processes' ``(tasks, queues, open queues)`` after each
            renewal (see :func:`jobqueue.db.registry.live_catalog`).
        interval_seconds: the renewal period, in seconds.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        info: registry.ProcessInfo,
        busy: Callable[[], int] = lambda: 0,
        finished: Callable[[], dict[str, list[int]]] = dict,
        on_catalog: CatalogListener | None = None,
        interval_seconds: float = ANNOUNCE_SECONDS,
    ) -> None:
        self.engine = engine
        self.info = info
        self.busy = busy
        self.finished = finished
        self.on_catalog = on_catalog
        self.interval_seconds = interval_seconds

    async def announce(self) -> None:
        """Insert or renew this process's row, delete the rows of silent processes, and read
        what the live ones run.

        Raises:
            DatabaseUnavailable: the database cannot be reached.
        """
        async with write(self.engine) as conn:
            await registry.announce_process(conn, self.info, self.busy(), self.finished())
            await registry.forget_silent_processes(conn, SILENT_SECONDS)
            catalog = await registry.live_catalog(conn)
        if self.on_catalog is not None:
            self.on_catalog(*catalog)

    async def run(self) -> None:
        """Announce every ``interval_seconds`` until cancelled; a database fault is logged.
        Anything else propagates (the supervisor restarts the loop)."""
        while True:
            try:
                await self.announce()
            except DatabaseUnavailable as exc:
                log.warning("process_announce_failed", error=str(exc))
            await asyncio.sleep(self.interval_seconds)

    async def withdraw(self) -> None:
        """Delete this process's row (a clean stop); a database fault is logged, and the row
        is then deleted by another process after ``SILENT_SECONDS``."""
        try:
            async with write(self.engine) as conn:
                await registry.withdraw_process(conn, self.info.worker_id)
        except DatabaseUnavailable as exc:
            log.warning("process_withdraw_failed", error=str(exc))
