"""JobService: the use cases (create, get, wait, list, attempts, cancel, retry, readiness).
Knows the domain and the database, never HTTP. Raises the errors of ``jobqueue.errors``; the
API maps them to status codes.

Each call opens its own transaction at this edge (one call, one transaction): the repository
never commits.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.coalesce import Coalescer
from jobqueue.db import dashboard_queries, repository
from jobqueue.db.engine import HeldConnection, connect, transaction
from jobqueue.db.notifications import Notifications
from jobqueue.encoding import check_depth, decode_cursor, encode_cursor, encode_json, utf8_size
from jobqueue.errors import (
    IdempotencyConflict,
    InvalidJobRequest,
    JobNotFound,
    JobStateConflict,
    PayloadTooLarge,
    TaskError,
    UnknownTask,
)
from jobqueue.jobs import Attempt, Job, JobStatus, NewJob
from jobqueue.metrics import Metrics, TableStats
from jobqueue.tasks.registry import TaskRegistry
from jobqueue.waiters import FinishWaiters

EnqueueListener = Callable[[Sequence[str]], None]

INSERT_CHUNK = 1000
"""Rows per INSERT statement in a batch (ten array parameters of this length each)."""


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """Per-job defaults and limits (from settings).

    Attributes:
        max_attempts: attempts a job gets when the request does not say.
        timeout_seconds: per-attempt timeout, in seconds, when the request does not say.
        max_payload_bytes: the largest payload, as compact UTF-8 JSON, in bytes.
        max_payload_depth: the most levels of objects and arrays a payload may nest (the
            payload object itself is level 1).
    """

    max_attempts: int = 3
    timeout_seconds: float = 300.0
    max_payload_bytes: int = 1_048_576
    max_payload_depth: int = 64


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What a client asks for when it creates a job (shapes as in the API's ``JobCreate``).

    ``payload`` must be a JSON object. The first run is at ``run_at`` (timezone-aware) or
    ``delay_seconds`` (>= 0) from now, not both. Requests with the same ``idempotency_key``
    create one job.
    """

    task: str = "echo"
    payload: dict[str, Any] | None = None
    queue: str = "default"
    priority: int = 0
    description: str | None = None
    max_attempts: int | None = None
    timeout_seconds: float | None = None
    delay_seconds: float | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a job listing: ``items`` newest first, ``next_cursor`` None on the last."""

    items: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Created:
    """A job returned by an enqueue: ``created`` is False when an idempotency key matched an
    existing job (nothing was inserted)."""

    job: Job
    created: bool


class JobService:
    """The use cases of the job queue, over one engine.

    Args:
        engine: the process's async engine.
        registry: the known tasks (``create`` refuses any other name).
        defaults: per-job defaults and limits.
        notifications: the LISTEN connection; ``wait`` needs it to be woken ("job finished"
            messages). Without it ``wait`` only reads the job at its start and its deadline.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        registry: TaskRegistry,
        defaults: JobDefaults,
        notifications: Notifications | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics or Metrics()
        self.registry = registry
        self.defaults = defaults
        self._listeners: list[EnqueueListener] = []
        self._waiters = FinishWaiters()
        self._inserts: Coalescer[NewJob, Job] = Coalescer(self._insert_coalesced, INSERT_CHUNK)
        # The coalescer writes one batch at a time: one held connection serves it.
        self._insert_connection = HeldConnection(engine)
        if notifications is not None:
            notifications.subscribe(repository.NOTIFY_FINISHED, self._waiters.finished)
            notifications.on_connect(self._waiters.wake_all)

    def add_enqueue_listener(self, listener: EnqueueListener) -> None:
        """Call ``listener(queues)`` after each committed enqueue (wakes the local dispatcher)."""
        self._listeners.append(listener)

    def prepare(self, request: JobRequest) -> NewJob:
        """Check a request and apply defaults, without touching the database.

        Raises:
            UnknownTask: the task is not registered (the message lists the known ones).
            PayloadTooLarge: the payload's JSON is over ``max_payload_bytes``.
            InvalidJobRequest: U+0000 or a lone surrogate in a string, NaN/Infinity, both
                ``run_at`` and ``delay_seconds``, a naive or out-of-range ``run_at``, a
                non-finite number, a payload nesting deeper than ``max_payload_depth``, or a
                payload the task's validator refuses.
        """
        if request.task not in self.registry:
            raise UnknownTask(request.task, self.registry.names())
        texts = (
            ("queue", request.queue),
            ("description", request.description),
            ("idempotency_key", request.idempotency_key),
        )
        for name, text in texts:
            if text is not None:
                if "\x00" in text:
                    raise InvalidJobRequest(
                        f"{name} contains U+0000, which PostgreSQL cannot store"
                    )
                utf8_size(text, name)
        payload = {} if request.payload is None else request.payload
        payload_json = encode_json(payload, "payload")
        size = utf8_size(payload_json, "payload")
        if size > self.defaults.max_payload_bytes:
            raise PayloadTooLarge(size, self.defaults.max_payload_bytes)
        check_depth(payload, payload_json, self.defaults.max_payload_depth, "payload")
        if request.run_at is not None and request.delay_seconds is not None:
            raise InvalidJobRequest("give run_at or delay_seconds, not both")
        if request.run_at is not None:
            _check_run_at(request.run_at)
        entry = self.registry.get(request.task)
        if entry is not None and entry.validate is not None:
            try:
                entry.validate(request.payload or {})
            except (ValueError, TaskError) as exc:
                raise InvalidJobRequest(f"payload for task {request.task!r}: {exc}") from exc
        timeout = request.timeout_seconds or self.defaults.timeout_seconds
        delay = request.delay_seconds or 0.0
        if not math.isfinite(timeout) or not math.isfinite(delay) or delay < 0:
            raise InvalidJobRequest("timeout_seconds and delay_seconds must be finite and >= 0")
        return NewJob(
            task=request.task,
            payload_json=payload_json,
            queue=request.queue,
            priority=request.priority,
            description=request.description,
            max_attempts=request.max_attempts or self.defaults.max_attempts,
            timeout_seconds=timeout,
            delay_seconds=delay,
            run_at=request.run_at,
            idempotency_key=request.idempotency_key,
        )

    async def create(self, request: JobRequest) -> Created:
        """Create one job (status ``todo``), or return the job its idempotency key names.

        Without a key, concurrent calls are coalesced (:mod:`jobqueue.coalesce`): the requests
        that arrive while one INSERT is in flight go together in the next, one round trip for
        all of them, the NOTIFY included.

        Raises:
            the errors of :meth:`prepare`; IdempotencyConflict; DatabaseUnavailable.
        """
        if request.idempotency_key is not None:
            return (await self.create_many([request]))[0]
        job = await self._inserts.submit(self.prepare(request))
        self.metrics.enqueued.labels(job.queue, job.task).inc()
        for listener in self._listeners:
            listener([job.queue])
        return Created(job, True)

    async def close(self) -> None:
        """Give back the connection the enqueue path holds (shutdown)."""
        await self._insert_connection.close()

    async def _insert_coalesced(self, new_jobs: list[NewJob]) -> list[Job | Exception]:
        try:
            async with self._insert_connection.use() as conn:
                return list(await repository.insert_jobs(conn, new_jobs, notify=True))
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

    async def create_many(self, requests: Sequence[JobRequest]) -> list[Created]:
        """Create jobs all or nothing: one INSERT per chunk and one NOTIFY, in one transaction.

        A request whose idempotency key is taken returns the existing job (``created`` False)
        if task, queue and payload match, and fails the whole call otherwise. Keys hold as long
        as the job row exists. The local dispatcher is woken only after the commit; other
        processes get the NOTIFY, which PostgreSQL delivers at commit.

        Raises:
            the errors of :meth:`prepare`, their message prefixed with ``jobs[i]: `` when
            there are several requests (nothing is stored); IdempotencyConflict;
            DatabaseUnavailable.
        """
        new_jobs = [
            self._prepare_at(request, i, len(requests)) for i, request in enumerate(requests)
        ]
        if len(new_jobs) <= INSERT_CHUNK and all(job.idempotency_key is None for job in new_jobs):
            # One statement: atomic on its own, and one round trip with its NOTIFY.
            async with connect(self.engine) as conn:
                inserted = await repository.insert_jobs(conn, new_jobs, notify=True)
            results = [Created(job, True) for job in inserted]
        else:
            async with transaction(self.engine) as conn:
                inserted = []
                for start in range(0, len(new_jobs), INSERT_CHUNK):
                    chunk = new_jobs[start : start + INSERT_CHUNK]
                    inserted.extend(await repository.insert_jobs(conn, chunk))
                results = await self._match(conn, new_jobs, inserted)
                if inserted:
                    await repository.notify(
                        conn, repository.NOTIFY_QUEUES, [job.queue for job in inserted]
                    )
        self._count_enqueued((job.queue, job.task) for job in inserted)
        queues = sorted({job.queue for job in inserted})
        for listener in self._listeners if queues else ():
            listener(queues)
        return results

    def _count_enqueued(self, jobs: Iterable[tuple[str, str]]) -> None:
        for (queue, task), count in Counter(jobs).items():
            self.metrics.enqueued.labels(queue, task).inc(count)

    async def create_batch(self, requests: Sequence[JobRequest]) -> list[int]:
        """Create jobs all or nothing, like :meth:`create_many`, and return only their ids (in
        request order; a matching idempotency key gives the existing job's id).

        The common case (no idempotency keys, at most ``INSERT_CHUNK`` jobs) is one statement
        that returns ids only: no row is read back or turned into a ``Job``.

        Raises:
            as :meth:`create_many`.
        """
        if len(requests) > INSERT_CHUNK or any(r.idempotency_key for r in requests):
            return [created.job.id for created in await self.create_many(requests)]
        new_jobs = [
            self._prepare_at(request, i, len(requests)) for i, request in enumerate(requests)
        ]
        async with connect(self.engine) as conn:
            ids = await repository.insert_job_ids(conn, new_jobs)
        self._count_enqueued((job.queue, job.task) for job in new_jobs)
        queues = sorted({job.queue for job in new_jobs})
        for listener in self._listeners:
            listener(queues)
        return ids

    def _prepare_at(self, request: JobRequest, index: int, count: int) -> NewJob:
        try:
            return self.prepare(request)
        except InvalidJobRequest as exc:
            if count > 1:
                exc.args = (f"jobs[{index}]: {exc}",)
            raise

    @staticmethod
    async def _match(
        conn: asyncpg.Connection, new_jobs: list[NewJob], inserted: list[Job]
    ) -> list[Created]:
        """Pair each request with its job: inserted ones in order, keyed ones by key."""
        by_key = {job.idempotency_key: job for job in inserted if job.idempotency_key}
        missing = [j.idempotency_key for j in new_jobs if j.idempotency_key not in (None, *by_key)]
        if missing:
            existing = await repository.jobs_by_idempotency_key(conn, [k for k in missing if k])
            by_key.update({job.idempotency_key: job for job in existing if job.idempotency_key})
        fresh = iter(job for job in inserted if job.idempotency_key is None)
        inserted_ids = {job.id for job in inserted}
        inserted_ids_all = frozenset(inserted_ids)
        results: list[Created] = []
        for new in new_jobs:
            if new.idempotency_key is None:
                results.append(Created(next(fresh), True))
                continue
            job = by_key[new.idempotency_key]
            differs = _difference(new, job)
            if differs and job.id in inserted_ids_all:
                raise InvalidJobRequest(
                    f"idempotency key {new.idempotency_key!r} is used twice in this batch for "
                    f"jobs with a different {differs}: give each job its own key"
                )
            if differs:
                raise IdempotencyConflict(new.idempotency_key, job.id, differs)
            results.append(Created(job, job.id in inserted_ids))
            inserted_ids.discard(job.id)  # a key repeated in one batch creates one job
        return results

    async def get(self, job_id: int) -> Job:
        """The job with ``job_id``.

        Raises:
            JobNotFound: no such job. DatabaseUnavailable.
        """
        async with connect(self.engine) as conn:
            job = await repository.get_job(conn, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def wait(self, job_id: int, seconds: float) -> Job:
        """The job once it is ``done``, ``failed`` or ``cancelled``, or after ``seconds``
        (float seconds, 0 to 60) in whatever status it has then.

        Woken by the "finished" NOTIFY the completer sends, not by polling: the job is read at
        the start, on each notification naming it, and at the deadline.

        Raises:
            JobNotFound: no such job. DatabaseUnavailable.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        with self._waiters.watch(job_id) as woken:
            job = await self.get(job_id)
            while not job.status.is_final:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(woken.wait(), remaining)
                except TimeoutError:
                    return await self.get(job_id)
                woken.clear()
                job = await self.get(job_id)
            return job

    async def attempts(self, job_id: int) -> list[Attempt]:
        """Every attempt of a job, oldest first: the recorded unsuccessful ones, then the
        successful (``done``) or ``running`` one described by the job row itself.

        Raises:
            JobNotFound: no such job. DatabaseUnavailable.
        """
        async with connect(self.engine) as conn:
            job = await repository.get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            history = await repository.list_attempts(conn, job_id)
        current = {JobStatus.DONE: "done", JobStatus.IN_PROGRESS: "running"}.get(job.status)
        if current is not None:
            finished = job.finished_at if job.status is JobStatus.DONE else None
            history.append(
                Attempt(
                    job.attempts, job.worker_id, job.started_at, finished, current, None, None, None
                )
            )
        return history

    async def cancel(self, job_id: int) -> Job:
        """Cancel a job: ``todo`` becomes ``cancelled`` at once; for an ``in_progress`` job the
        request is recorded and sent (NOTIFY) to the process running it, which cancels the
        attempt (the job then ends ``cancelled``; an attempt that completes first wins).
        Cancelling a ``cancelled`` job changes nothing.

        Returns:
            the job after the call (``in_progress`` with ``cancel_requested_at`` set for a
            running one).

        Raises:
            JobNotFound; JobStateConflict for a ``done`` or ``failed`` job;
            DatabaseUnavailable.
        """
        async with transaction(self.engine) as conn:
            job = await repository.lock_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job.status is JobStatus.TODO:
                job = await repository.cancel_todo(conn, job_id)
                await repository.notify(conn, repository.NOTIFY_FINISHED, [job_id])
                if job is not None:
                    self.metrics.count_finished([(job.queue, job.task, "cancelled")])
            elif job.status is JobStatus.IN_PROGRESS:
                job = await repository.request_cancel(conn, job_id)
                await repository.notify(conn, repository.NOTIFY_CANCEL, [job_id])
            elif job.status is not JobStatus.CANCELLED:
                raise JobStateConflict(job_id, job.status, "cancelled", ["todo", "in_progress"])
        assert job is not None  # the row is locked: its status cannot have changed
        return job

    async def retry(self, job_id: int) -> Job:
        """Put a ``failed`` or ``cancelled`` job back to ``todo`` with fresh attempts (its
        attempt history stays).

        Raises:
            JobNotFound; JobStateConflict for any other status; DatabaseUnavailable.
        """
        async with transaction(self.engine) as conn:
            job = await repository.lock_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            retried = await repository.retry_job(conn, job_id)
            if retried is None:
                raise JobStateConflict(job_id, job.status, "retried", ["failed", "cancelled"])
            await repository.notify(conn, repository.NOTIFY_QUEUES, [retried.queue])
        for listener in self._listeners:
            listener([retried.queue])
        return retried

    async def list(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: JobStatus | None = None,
        queue: str | None = None,
        task: str | None = None,
    ) -> Page:
        """A page of jobs, newest first, with keyset pagination (stable under inserts).

        Args:
            limit: page size, 1 to 1000 (the API enforces the range).
            cursor: ``next_cursor`` of the previous page, or None for the first.

        Raises:
            InvalidCursor: a cursor this service did not issue. DatabaseUnavailable.
        """
        before_id = None if cursor is None else decode_cursor(cursor)
        async with connect(self.engine) as conn:
            # One extra row tells whether another page exists without a COUNT.
            rows = await repository.list_jobs(
                conn, limit=limit + 1, before_id=before_id, status=status, queue=queue, task=task
            )
        items = rows[:limit]
        next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    async def refresh_table_stats(self) -> None:
        """Refresh the table gauges of :attr:`metrics` unless they are fresh (two grouped
        queries at most every ``TABLE_STATS_TTL_SECONDS``; a scrape calls this first).

        Raises:
            DatabaseUnavailable: the gauges keep their last values.
        """
        if not self.metrics.table_stats_stale():
            return
        async with connect(self.engine) as conn:
            counts = await dashboard_queries.count_by_queue_and_status(conn)
            oldest = await dashboard_queries.oldest_due_age_by_queue(conn)
        queues = {row.queue for row in counts}
        self.metrics.table_stats = TableStats(
            counts={(row.queue, str(row.status)): row.jobs for row in counts},
            oldest_due_age_seconds={queue: oldest.get(queue, 0.0) for queue in queues},
            taken_at=time.monotonic(),
        )

    async def schema_revision(self) -> str | None:
        """The database's alembic revision (None if never migrated).

        Raises:
            DatabaseUnavailable: the database cannot be reached.
        """
        async with connect(self.engine) as conn:
            return await repository.alembic_revision(conn)


EARLIEST_RUN_AT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_RUN_AT = datetime(9999, 1, 1, tzinfo=UTC)


def _check_run_at(run_at: datetime) -> None:
    """Refuse a naive ``run_at`` or one outside 1970-01-01 .. 9999-01-01 UTC (a time in the
    past just means "now"; the range keeps every value storable and printable)."""
    if run_at.utcoffset() is None:
        raise InvalidJobRequest("run_at needs a UTC offset, e.g. 2026-11-29T12:00:00Z")
    try:
        in_range = EARLIEST_RUN_AT <= run_at.astimezone(UTC) < LATEST_RUN_AT
    except OverflowError:
        in_range = False
    if not in_range:
        raise InvalidJobRequest("run_at must lie between 1970-01-01 and 9999-01-01 UTC")


def _difference(new: NewJob, job: Job) -> str | None:
    """Which of task, queue, payload differ between a request and the job its key names."""
    if new.task != job.task:
        return "task"
    if new.queue != job.queue:
        return "queue"
    if json.loads(new.payload_json) != job.payload:
        return "payload"
    return None
