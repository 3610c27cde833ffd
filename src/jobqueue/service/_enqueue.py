"""Enqueue: one job (coalesced with concurrent ones), all-or-nothing batches, idempotency keys.

After every commit the local claimer is told which queues got work and when it is due (one
wake-up per enqueue); other processes learn it from the NOTIFY the same statement sends, whose
origin tag makes this process's own listener skip it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.coalesce import Coalescer
from jobqueue.db import queries
from jobqueue.db.engine import HeldConnection, connect, transaction
from jobqueue.errors import IdempotencyConflict, InvalidJobRequest, UnknownQueue, UnknownTask
from jobqueue.jobs import Job, NewJob
from jobqueue.metrics import Metrics
from jobqueue.notify import protocol
from jobqueue.service._catalog import Catalog
from jobqueue.service._intake import (
    JobDefaults,
    JobRequest,
    difference,
    due_in_seconds,
    prepare,
    prepare_at,
)
from jobqueue.tasks.registry import TaskRegistry

INSERT_CHUNK = 1000
"""Rows per INSERT statement in a batch (ten array parameters of this length each)."""

EnqueueListener = Callable[[Mapping[str, float]], None]
"""Called after a commit with ``{queue: seconds until its earliest new job is due}``."""


@dataclass(frozen=True, slots=True)
class Created:
    """A job returned by an enqueue: ``created`` is False when an idempotency key matched an
    existing job (nothing was inserted)."""

    job: Job
    created: bool


@dataclass(frozen=True, slots=True)
class CreatedIds:
    """The answer of a batch enqueue: the jobs' ids in request order, and how many of them were
    created by this call (the others' idempotency keys named existing jobs)."""

    ids: list[int]
    created: int


class Enqueuer:
    """Creates jobs.

    Args:
        engine: the process's engine.
        registry: the known tasks (any other name is refused).
        defaults: per-job defaults and limits.
        metrics: ``jobqueue_jobs_enqueued_total`` is counted here.
        origin: this app's NOTIFY origin tag (its own listener skips its messages).
        catalog: the tasks and queues live processes announced (accepted besides the local
            ones); a fresh, empty one when None.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        registry: TaskRegistry,
        defaults: JobDefaults,
        metrics: Metrics,
        origin: str | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.catalog = catalog or Catalog()
        self.engine = engine
        self.origin = origin
        self.registry = registry
        self.defaults = defaults
        self.metrics = metrics
        self.listeners: list[EnqueueListener] = []
        self._inserts: Coalescer[NewJob, Job] = Coalescer(self._insert_coalesced, INSERT_CHUNK)
        # The coalescer writes one batch at a time: one held connection serves it.
        self._connection = HeldConnection(engine)

    def _notice(self, queues: Iterable[str]) -> queries.Notice:
        return queries.Notice(protocol.CHANNEL, protocol.queues_runnable(queues, self.origin))

    async def close(self) -> None:
        """Give back the connection the enqueue path holds (shutdown)."""
        await self._connection.close()

    def _committed(self, jobs: Sequence[NewJob] | Sequence[Job]) -> None:
        """Count the jobs and tell the listeners, once, after the commit."""
        if not jobs:
            return
        for (queue, task), count in Counter((job.queue, job.task) for job in jobs).items():
            self.metrics.enqueued.labels(queue, task).inc(count)
        now = datetime.now(UTC)
        due: dict[str, float] = {}
        for job in jobs:
            seconds = (
                due_in_seconds(job, now)
                if isinstance(job, NewJob)
                else max((job.run_at - job.created_at).total_seconds(), 0.0)
            )
            due[job.queue] = min(due.get(job.queue, seconds), seconds)
        for listener in self.listeners:
            listener(due)

    async def create(self, request: JobRequest) -> Created:
        """Create one job (status ``todo``), or return the job its idempotency key names.

        Without a key, concurrent calls are coalesced (:mod:`jobqueue.coalesce`): the requests
        that arrive while one INSERT is in flight go together in the next, one round trip for
        all of them, the NOTIFY included.

        Raises:
            the errors of :func:`prepare`; IdempotencyConflict; DatabaseUnavailable.
        """
        if request.idempotency_key is not None:
            return (await self.create_many([request]))[0]
        job = await self._inserts.submit(await self.check(request))
        self._committed([job])
        return Created(job, True)

    async def _insert_coalesced(self, new_jobs: list[NewJob]) -> list[Job | Exception]:
        notice = self._notice(job.queue for job in new_jobs)
        try:
            async with self._connection.use() as conn:
                return list(await queries.insert_jobs(conn, new_jobs, notice=notice))
        except asyncpg.DataError:
            if len(new_jobs) == 1:
                raise
        # A row the database refuses must not fail the requests it was grouped with.
        results: list[Job | Exception] = []
        for job in new_jobs:
            try:
                results.extend(await self._insert_coalesced([job]))
            except asyncpg.DataError as exc:
                results.append(exc)
        return results

    async def check(self, request: JobRequest) -> NewJob:
        """:func:`prepare` with the names live processes announced; a task or queue nobody
        announced is looked up in the registry once more (``Catalog.retry``).

        Raises:
            the errors of :func:`prepare`; DatabaseUnavailable.
        """
        try:
            return prepare(request, self.registry, self.defaults, self.catalog.live)
        except (UnknownTask, UnknownQueue) as exc:
            return await self.catalog.retry(
                lambda: prepare(request, self.registry, self.defaults, self.catalog.live), exc
            )

    async def _prepare_all(self, requests: Sequence[JobRequest]) -> list[NewJob]:
        count = len(requests)

        def build() -> list[NewJob]:
            live = self.catalog.live
            return [
                prepare_at(request, self.registry, self.defaults, i, count, live)
                for i, request in enumerate(requests)
            ]

        try:
            return build()
        except (UnknownTask, UnknownQueue) as exc:
            return await self.catalog.retry(build, exc)

    async def create_many(self, requests: Sequence[JobRequest]) -> list[Created]:
        """Create jobs all or nothing: one INSERT per chunk and one NOTIFY, in one transaction.

        A request whose idempotency key is taken returns the existing job (``created`` False)
        if task, queue and payload match, and fails the whole call otherwise. Keys hold as long
        as the job row exists.

        Raises:
            the errors of :func:`prepare`, their message prefixed with ``jobs[i]: `` when
            there are several requests (nothing is stored); IdempotencyConflict;
            DatabaseUnavailable.
        """
        new_jobs = await self._prepare_all(requests)
        if len(new_jobs) <= INSERT_CHUNK and all(job.idempotency_key is None for job in new_jobs):
            # One statement: atomic on its own, and one round trip with its NOTIFY.
            async with connect(self.engine) as conn:
                notice = self._notice(job.queue for job in new_jobs)
                inserted = await queries.insert_jobs(conn, new_jobs, notice=notice)
            results = [Created(job, True) for job in inserted]
        else:
            # Keyed jobs go in key order: two batches that share keys then take the unique
            # index's locks in the same order and cannot deadlock (unkeyed ones keep theirs).
            ordered = sorted(
                new_jobs, key=lambda j: (j.idempotency_key is None, j.idempotency_key or "")
            )
            async with transaction(self.engine) as conn:
                inserted = []
                for start in range(0, len(ordered), INSERT_CHUNK):
                    chunk = ordered[start : start + INSERT_CHUNK]
                    inserted.extend(await queries.insert_jobs(conn, chunk))
                results = await _match(conn, new_jobs, inserted)
                if inserted:
                    await queries.notify_raw(conn, self._notice(job.queue for job in inserted))
        self._committed(inserted)
        return results

    async def create_batch(self, requests: Sequence[JobRequest]) -> CreatedIds:
        """Create jobs all or nothing, like :meth:`create_many`, and return only their ids (in
        request order; a matching idempotency key gives the existing job's id) and how many
        jobs were created: 0 when every request's key named an existing job (a replay).

        The common case (no idempotency keys, at most ``INSERT_CHUNK`` jobs) is one statement
        that returns ids only: no row is read back or turned into a ``Job``.

        Raises:
            as :meth:`create_many`.
        """
        if len(requests) > INSERT_CHUNK or any(r.idempotency_key for r in requests):
            results = await self.create_many(requests)
            return CreatedIds(
                [result.job.id for result in results], sum(result.created for result in results)
            )
        new_jobs = await self._prepare_all(requests)
        async with connect(self.engine) as conn:
            ids = await queries.insert_job_ids(
                conn, new_jobs, self._notice(job.queue for job in new_jobs)
            )
        self._committed(new_jobs)
        return CreatedIds(ids, len(ids))


async def _match(
    conn: asyncpg.Connection, new_jobs: list[NewJob], inserted: list[Job]
) -> list[Created]:
    """Pair each request with its job: inserted ones in order, keyed ones by key.

    Raises:
        InvalidJobRequest: one key used twice in this batch for different jobs.
        IdempotencyConflict: a key already names a job created from a different request.
    """
    by_key = {job.idempotency_key: job for job in inserted if job.idempotency_key}
    missing = [j.idempotency_key for j in new_jobs if j.idempotency_key not in (None, *by_key)]
    if missing:
        existing = await queries.jobs_by_idempotency_key(conn, [k for k in missing if k])
        by_key.update({job.idempotency_key: job for job in existing if job.idempotency_key})
    fresh = iter(job for job in inserted if job.idempotency_key is None)
    inserted_ids = {job.id for job in inserted}
    inserted_ids_all = frozenset(inserted_ids)
    results: list[Created] = []
    for index, new in enumerate(new_jobs):
        if new.idempotency_key is None:
            results.append(Created(next(fresh), True))
            continue
        job = by_key[new.idempotency_key]
        differs = difference(new, job)
        if differs and job.id in inserted_ids_all:
            raise InvalidJobRequest(
                f"jobs[{index}]: idempotency key {new.idempotency_key!r} is used twice in this "
                f"batch for jobs with a different {differs}: give each job its own key"
            )
        if differs:
            conflict = IdempotencyConflict(new.idempotency_key, job.id, differs)
            if len(new_jobs) > 1:
                conflict.args = (f"jobs[{index}]: {conflict}",)
            raise conflict
        results.append(Created(job, job.id in inserted_ids))
        inserted_ids.discard(job.id)  # a key repeated in one batch creates one job
    return results
