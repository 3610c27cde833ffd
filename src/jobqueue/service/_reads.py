"""Reads: one job, a long-poll for its final status, its attempts, a page of jobs."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import queries
from jobqueue.db.engine import read
from jobqueue.encoding import decode_cursor, encode_cursor
from jobqueue.errors import JobNotFound, TooManyWaiting
from jobqueue.jobs import Attempt, AttemptOutcome, Job, JobFilter, JobStatus
from jobqueue.notify import FinishWaiters, Listener

DEFAULT_MAX_PAGE_BYTES = 8 * 1_048_576
"""The default byte budget of a page of :meth:`Reads.list` (``JOBQUEUE_MAX_PAGE_BYTES``)."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a job listing: ``items`` newest first, ``next_cursor`` None on the last."""

    items: list[Job]
    next_cursor: str | None


class Reads:
    """The read use cases over one engine.

    Args:
        engine: the process's engine.
        waiters: long-poll waiters, woken by "finished" notifications (the listener feeds them).
        poll_seconds: how often :meth:`wait` re-reads a job besides being woken, in seconds,
            while no notification can be relied on (see ``listener``); None: only when woken.
        max_waiting: how many :meth:`wait` calls may wait at once (each holds a coroutine and
            an event until its job finishes or its deadline passes).
        max_page_bytes: the most bytes of payload and result JSON text a page of :meth:`list`
            holds, bytes (one job is listed whatever its size).
        listener: the LISTEN connection feeding ``waiters``: while it is connected and hears
            (:attr:`Listener.connected`), a poll tick reads nothing. None: poll-only mode,
            every tick reads.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        waiters: FinishWaiters,
        poll_seconds: float | None = None,
        max_waiting: int = 1000,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
        listener: Listener | None = None,
    ) -> None:
        self.engine = engine
        self.waiters = waiters
        self.poll_seconds = poll_seconds
        self.max_waiting = max_waiting
        self.max_page_bytes = max_page_bytes
        self.listener = listener

    async def get(self, job_id: int) -> Job:
        """The job with ``job_id``.

        Raises:
            JobNotFound: no such job. DatabaseUnavailable.
        """
        async with read(self.engine) as conn:
            job = await queries.get_job(conn, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def wait(self, job_id: int, seconds: float) -> Job:
        """The job once it is ``done``, ``failed`` or ``cancelled``, or after ``seconds``
        (float seconds, 0 to 60) in whatever status it has then.

        Woken by the "finished" NOTIFY the outcome write sends (and, for jobs this process
        finished, by the pool at once): the job is read at the start, on each wake-up naming
        it, and at the deadline. With ``poll_seconds`` set it is also read every
        ``poll_seconds`` whenever no notification can be relied on: in poll-only mode (no
        listener), and while the listener is not :attr:`~Listener.connected` (reconnecting,
        or its pings do not come back: behind pgbouncer in transaction mode); so a job
        finished by another process is seen within one poll interval. The listener is asked
        at each tick, so a wait that began while LISTEN worked reads within one interval of
        LISTEN failing; while it hears, a tick costs a timer and no read. Cancelling the call
        (the API does when the client disconnects) ends the wait at once.

        Raises:
            TooManyWaiting: ``max_waiting`` calls wait already (nothing was read).
            JobNotFound: no such job. DatabaseUnavailable.
        """
        if len(self.waiters) >= self.max_waiting:
            raise TooManyWaiting(self.max_waiting)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        with self.waiters.watch(job_id) as woken:
            job = await self.get(job_id)
            while not job.status.is_final:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                tick = self.poll_seconds is not None and self.poll_seconds < remaining
                # A timeout is a poll tick, or the deadline (read once more, then the loop ends).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self.poll_seconds if tick else remaining)
                if tick and not woken.is_set() and self._notified():
                    continue  # LISTEN hears: a finish would have woken us, nothing to read
                woken.clear()
                job = await self.get(job_id)
            return job

    def _notified(self) -> bool:
        """True while a "finished" notification would reach this process."""
        return self.listener is not None and self.listener.connected

    async def attempts(self, job_id: int) -> list[Attempt]:
        """Every attempt of a job, oldest first: the recorded unsuccessful ones, then the
        successful (``done``) or ``running`` one described by the job row itself.

        Raises:
            JobNotFound: no such job. DatabaseUnavailable.
        """
        async with read(self.engine) as conn:
            job = await queries.get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            history = await queries.list_attempts(conn, job_id)
        current = {
            JobStatus.DONE: AttemptOutcome.DONE,
            JobStatus.IN_PROGRESS: AttemptOutcome.RUNNING,
        }.get(job.status)
        if current is not None:
            finished = job.finished_at if job.status is JobStatus.DONE else None
            history.append(
                Attempt(
                    job.attempts, job.worker_id, job.started_at, finished, current, None, None, None
                )
            )
        return history

    async def list(self, where: JobFilter, *, limit: int = 50, cursor: str | None = None) -> Page:
        """A page of jobs, newest first, with keyset pagination (stable under inserts).

        A page holds at most ``limit`` jobs and at most ``max_page_bytes`` bytes of payload and
        result JSON text (the stored ``payload_bytes + result_bytes``), but always one job when
        any is left, however large, so that paging makes progress. A page cut by the budget has
        a ``next_cursor`` after its last job, so no job is skipped or repeated. The cut is made
        in the database: the jobs left out are never read into this process.

        Args:
            where: the filters (``text`` is not used here).
            limit: page size, 1 to 1000 (the API enforces the range).
            cursor: ``next_cursor`` of the previous page, or None for the first.

        Raises:
            InvalidCursor: a cursor this service did not issue. DatabaseUnavailable.
        """
        before_id = None if cursor is None else decode_cursor(cursor)
        async with read(self.engine) as conn:
            rows = await queries.list_jobs(
                conn, where, limit=limit, max_bytes=self.max_page_bytes, before_id=before_id
            )
        next_cursor = encode_cursor(rows.jobs[-1].id) if rows.more else None
        return Page(items=rows.jobs, next_cursor=next_cursor)

    async def schema_revision(self) -> str | None:
        """The database's alembic revision (None if never migrated).

        Raises:
            DatabaseUnavailable: the database cannot be reached.
        """
        async with read(self.engine) as conn:
            return await queries.alembic_revision(conn)
