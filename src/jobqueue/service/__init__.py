"""JobService: the use cases of the job queue (create, read, wait, list, cancel, retry), over
one engine. Knows the domain and the database, never HTTP; raises the errors of
``jobqueue.errors``, which the API maps to status codes.

One face over private modules, one per concern: ``_intake`` (checking a request, no I/O),
``_enqueue`` (inserts, idempotency, the wake-up of the local claimer), ``_reads`` (get, wait,
attempts, list), ``_admin`` (cancel, retry), ``_queues`` (list, pause, resume), ``_stats`` (the
metrics' table gauges). Each call
opens its own connection or transaction at this edge; ``db/`` never commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import registry as registry_queries
from jobqueue.db.engine import read
from jobqueue.jobs import Attempt, Job, JobFilter, NewJob
from jobqueue.metrics import Metrics
from jobqueue.notify import FinishWaiters, JobsFinished, Listener
from jobqueue.service._admin import Admin
from jobqueue.service._catalog import Catalog, LiveNames
from jobqueue.service._enqueue import (
    INSERT_CHUNK,
    Created,
    CreatedIds,
    EnqueueListener,
    Enqueuer,
)
from jobqueue.service._intake import JobDefaults, JobRequest, prepare
from jobqueue.service._queues import QueueInfo, Queues
from jobqueue.service._reads import DEFAULT_MAX_PAGE_BYTES, Page, Reads
from jobqueue.service._schedules import Fired, Schedules, ScheduleSpec
from jobqueue.service._stats import TableStatsReader
from jobqueue.tasks.registry import TaskRegistry

__all__ = [
    "DEFAULT_MAX_PAGE_BYTES",
    "INSERT_CHUNK",
    "Catalog",
    "Created",
    "CreatedIds",
    "EnqueueListener",
    "Fired",
    "JobDefaults",
    "JobRequest",
    "JobService",
    "LiveNames",
    "Page",
    "QueueInfo",
    "ScheduleSpec",
    "Schedules",
]


class JobService:
    """The use cases of the job queue.

    Args:
        engine: the process's async engine.
        registry: the known tasks (``create`` refuses any other name).
        defaults: per-job defaults and limits.
        listener: the LISTEN connection; ``wait`` is woken by its "job finished" messages.
            None (poll-only): ``wait`` re-reads the job every ``wait_poll_seconds``.
        metrics: the process's metrics.
        origin: this app's NOTIFY origin tag (see ``notify/protocol.py``).
        wait_poll_seconds: how often ``wait`` re-reads the job besides being woken, in seconds,
            while no notification can be relied on (no ``listener``, or one that is not
            connected or hears nothing: see :meth:`Reads.wait`); None: only when woken (and at
            its start and deadline), and a wait then sees another process's finish only at
            its deadline whenever LISTEN fails.
        max_waiting: long-polls (:meth:`wait`) that may wait at once; one more raises
            :class:`~jobqueue.errors.TooManyWaiting`.
        max_page_bytes: the byte budget of a page of :meth:`list`: payload and result JSON
            text together, bytes (``JOBQUEUE_MAX_PAGE_BYTES``).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        registry: TaskRegistry,
        defaults: JobDefaults,
        listener: Listener | None = None,
        metrics: Metrics | None = None,
        origin: str | None = None,
        *,
        wait_poll_seconds: float | None = None,
        max_waiting: int = 1000,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.defaults = defaults
        self.metrics = metrics or Metrics()
        self.waiters = FinishWaiters()
        self.catalog = Catalog(self._read_catalog)
        """Tasks and queues live processes announced (refreshed by the registry loop)."""
        self._enqueue = Enqueuer(engine, registry, defaults, self.metrics, origin, self.catalog)
        self._reads = Reads(
            engine, self.waiters, wait_poll_seconds, max_waiting, max_page_bytes, listener
        )
        self._admin = Admin(engine, self.metrics, self._tell_listeners, origin)
        self.queues = Queues(engine, defaults.known_queues, self._tell_listeners, origin)
        """Queue use cases: list, pause, resume (``service/_queues.py``)."""
        self.schedules = Schedules(engine, self._enqueue.check, self.create_many, self.metrics)
        """Schedule use cases: define, list, pause, fire (``service/_schedules.py``)."""
        self._stats = TableStatsReader(engine, self.metrics, defaults.known_queues)
        if listener is not None:
            listener.subscribe(JobsFinished, self.waiters.finished)
            listener.on_connect(self.waiters.wake_all)

    async def processes(self) -> list[registry_queries.LiveProcess]:
        """The live processes of the registry, oldest first.

        Raises:
            DatabaseUnavailable.
        """
        async with read(self.engine) as conn:
            return await registry_queries.live_processes(conn)

    async def _read_catalog(self) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        async with read(self.engine) as conn:
            return await registry_queries.live_catalog(conn)

    def _tell_listeners(self, due: dict[str, float]) -> None:
        for listener in self._enqueue.listeners:
            listener(due)

    def add_enqueue_listener(self, listener: EnqueueListener) -> None:
        """Call ``listener({queue: seconds until due})`` after each committed enqueue or retry
        (wakes the local claimer, once: the listener skips this process's own NOTIFY)."""
        self._enqueue.listeners.append(listener)

    def prepare(self, request: JobRequest) -> NewJob:
        """Check a request and apply defaults, without touching the database (see
        :func:`jobqueue.service._intake.prepare` for the errors)."""
        return prepare(request, self.registry, self.defaults, self.catalog.live)

    async def create(self, request: JobRequest) -> Created:
        """Create one job; see :meth:`Enqueuer.create`."""
        return await self._enqueue.create(request)

    async def create_many(self, requests: Sequence[JobRequest]) -> list[Created]:
        """Create jobs all or nothing; see :meth:`Enqueuer.create_many`."""
        return await self._enqueue.create_many(requests)

    async def create_batch(self, requests: Sequence[JobRequest]) -> CreatedIds:
        """Create jobs all or nothing, ids and the number created only; see
        :meth:`Enqueuer.create_batch`."""
        return await self._enqueue.create_batch(requests)

    async def get(self, job_id: int) -> Job:
        """One job; see :meth:`Reads.get`."""
        return await self._reads.get(job_id)

    async def wait(self, job_id: int, seconds: float) -> Job:
        """Long-poll for a final status; see :meth:`Reads.wait`."""
        return await self._reads.wait(job_id, seconds)

    async def attempts(self, job_id: int) -> list[Attempt]:
        """Every attempt of a job; see :meth:`Reads.attempts`."""
        return await self._reads.attempts(job_id)

    async def list(self, where: JobFilter, *, limit: int = 50, cursor: str | None = None) -> Page:
        """A page of jobs; see :meth:`Reads.list`."""
        return await self._reads.list(where, limit=limit, cursor=cursor)

    async def cancel(self, job_id: int) -> Job:
        """Cancel a job; see :meth:`Admin.cancel`."""
        return await self._admin.cancel(job_id)

    async def retry(self, job_id: int) -> Job:
        """Retry a failed or cancelled job; see :meth:`Admin.retry`."""
        return await self._admin.retry(job_id)

    async def refresh_table_stats(self) -> None:
        """Refresh the metrics' table gauges unless fresh; see :class:`TableStatsReader`."""
        await self._stats.refresh()

    async def schema_revision(self) -> str | None:
        """The database's alembic revision; see :meth:`Reads.schema_revision`."""
        return await self._reads.schema_revision()

    async def close(self) -> None:
        """Give back the connection the enqueue path holds (shutdown)."""
        await self._enqueue.close()
