"""The process registry: each process with a worker pool keeps a row in ``processes`` saying
which queues it serves and which tasks it can run, renewed every ``interval_seconds``.

What it is for: a job whose task no live process has stays ``todo`` (a process claims only
jobs of its own tasks), and the metrics and the dashboard count such jobs
(``jobqueue_jobs_without_worker``) by reading this table. Rows not renewed for
``silent_seconds`` belong to dead processes; any process deletes them.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import queries
from jobqueue.db.engine import write
from jobqueue.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)

ANNOUNCE_SECONDS = 10.0
"""How often a process renews its row, in seconds."""

SILENT_SECONDS = 60.0
"""A row not renewed for this long is deleted, in seconds."""


class ProcessRegistry:
    """Keeps this process's row fresh.

    Args:
        engine: the process's engine.
        info: what this process announces.
        interval_seconds: the renewal period, in seconds.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        info: queries.ProcessInfo,
        interval_seconds: float = ANNOUNCE_SECONDS,
    ) -> None:
        self.engine = engine
        self.info = info
        self.interval_seconds = interval_seconds

    async def announce(self) -> None:
        """Insert or renew this process's row, and delete the rows of silent processes.

        Raises:
            DatabaseUnavailable: the database cannot be reached.
        """
        async with write(self.engine) as conn:
            await queries.announce_process(conn, self.info)
            await queries.forget_silent_processes(conn, SILENT_SECONDS)

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
                await queries.withdraw_process(conn, self.info.worker_id)
        except DatabaseUnavailable as exc:
            log.warning("process_withdraw_failed", error=str(exc))
