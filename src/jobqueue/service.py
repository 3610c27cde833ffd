"""JobService: the use cases (create, get, list, readiness). Knows the domain and the database,
never HTTP. Raises the errors of ``jobqueue.errors``; the API maps them to status codes.

Each call opens its own transaction at this edge (one call, one transaction): the repository
never commits.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import repository
from jobqueue.db.engine import connect, transaction
from jobqueue.errors import (
    InvalidCursor,
    InvalidJobRequest,
    JobNotFound,
    PayloadTooLarge,
    UnknownTask,
)
from jobqueue.jobs import Job, JobStatus, NewJob, find_nul
from jobqueue.tasks.registry import TaskRegistry

EnqueueListener = Callable[[Sequence[str]], None]


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """Per-job defaults and limits (from settings).

    Attributes:
        max_attempts: attempts a job gets when the request does not say.
        timeout_seconds: per-attempt timeout, in seconds, when the request does not say.
        max_payload_bytes: the largest payload, as compact UTF-8 JSON, in bytes.
    """

    max_attempts: int = 3
    timeout_seconds: float = 300.0
    max_payload_bytes: int = 1_048_576


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What a client asks for when it creates a job (shapes as in the API's ``JobCreate``).

    ``payload`` must be a JSON object; ``delay_seconds`` >= 0 defers the first run.
    """

    task: str = "echo"
    payload: dict[str, Any] | None = None
    queue: str = "default"
    priority: int = 0
    description: str | None = None
    max_attempts: int | None = None
    timeout_seconds: float | None = None
    delay_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a job listing: ``items`` newest first, ``next_cursor`` None on the last."""

    items: list[Job]
    next_cursor: str | None


def encode_json(value: Any, what: str) -> str:
    """Encode ``value`` as compact JSON text, refusing what PostgreSQL's jsonb cannot hold.

    Raises:
        InvalidJobRequest: on NaN or Infinity (not JSON, RFC 8259 section 6), a string with
            U+0000, a value JSON cannot encode, or nesting deeper than Python's recursion limit.
    """
    try:
        nul_path = find_nul(value, what)
        if nul_path is not None:
            raise InvalidJobRequest(
                f"{nul_path} contains the character U+0000, which PostgreSQL cannot store: "
                "remove it"
            )
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except RecursionError as exc:
        raise InvalidJobRequest(f"{what} is nested too deeply") from exc
    except (TypeError, ValueError) as exc:
        raise InvalidJobRequest(
            f"{what} is not valid JSON (NaN and Infinity are not): {exc}"
        ) from exc


def encode_cursor(last_id: int) -> str:
    """An opaque cursor for the page after the job with ``last_id``."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor from :func:`encode_cursor` holds.

    Raises:
        InvalidCursor: when the cursor was not made by :func:`encode_cursor`.
    """
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "id" or not number.isdigit():
            raise InvalidCursor()
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor() from exc


class JobService:
    """The use cases of the job queue, over one engine.

    Args:
        engine: the process's async engine.
        registry: the known tasks (``create`` refuses any other name).
        defaults: per-job defaults and limits.
    """

    def __init__(self, engine: AsyncEngine, registry: TaskRegistry, defaults: JobDefaults) -> None:
        self.engine = engine
        self.registry = registry
        self.defaults = defaults
        self._listeners: list[EnqueueListener] = []

    def add_enqueue_listener(self, listener: EnqueueListener) -> None:
        """Call ``listener(queues)`` after each committed enqueue (wakes the local dispatcher)."""
        self._listeners.append(listener)

    def prepare(self, request: JobRequest) -> NewJob:
        """Check a request and apply defaults, without touching the database.

        Raises:
            UnknownTask: the task is not registered (the message lists the known ones).
            PayloadTooLarge: the payload's JSON is over ``max_payload_bytes``.
            InvalidJobRequest: U+0000 in a string, NaN/Infinity, or a non-finite number.
        """
        if request.task not in self.registry:
            raise UnknownTask(request.task, self.registry.names())
        for name, text in (("queue", request.queue), ("description", request.description)):
            if text is not None and "\x00" in text:
                raise InvalidJobRequest(f"{name} contains U+0000, which PostgreSQL cannot store")
        payload_json = encode_json({} if request.payload is None else request.payload, "payload")
        size = len(payload_json.encode())
        if size > self.defaults.max_payload_bytes:
            raise PayloadTooLarge(size, self.defaults.max_payload_bytes)
        timeout = request.timeout_seconds or self.defaults.timeout_seconds
        if not math.isfinite(timeout) or not math.isfinite(request.delay_seconds):
            raise InvalidJobRequest("timeout_seconds and delay_seconds must be finite numbers")
        return NewJob(
            task=request.task,
            payload_json=payload_json,
            queue=request.queue,
            priority=request.priority,
            description=request.description,
            max_attempts=request.max_attempts or self.defaults.max_attempts,
            timeout_seconds=timeout,
            delay_seconds=request.delay_seconds,
        )

    async def create(self, request: JobRequest) -> Job:
        """Create one job (status ``todo``) and wake the dispatchers of its queue.

        Raises:
            the errors of :meth:`prepare`; DatabaseUnavailable.
        """
        return (await self.create_many([request]))[0]

    async def create_many(self, requests: Sequence[JobRequest]) -> list[Job]:
        """Create jobs all or nothing, with one INSERT and one NOTIFY in one transaction.

        The local dispatcher is woken only after the commit; other processes get the NOTIFY,
        which PostgreSQL delivers at commit.

        Raises:
            the errors of :meth:`prepare` (nothing is stored); DatabaseUnavailable.
        """
        new_jobs = [self.prepare(request) for request in requests]
        queues = sorted({job.queue for job in new_jobs})
        async with transaction(self.engine) as conn:
            jobs = await repository.insert_jobs(conn, new_jobs)
            await repository.notify(conn, queues)
        for listener in self._listeners:
            listener(queues)
        return jobs

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

    async def schema_revision(self) -> str | None:
        """The database's alembic revision (None if never migrated).

        Raises:
            DatabaseUnavailable: the database cannot be reached.
        """
        async with connect(self.engine) as conn:
            return await repository.alembic_revision(conn)


__all__ = ["EnqueueListener", "JobDefaults", "JobRequest", "JobService", "Page"]
