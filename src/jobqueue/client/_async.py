"""``AsyncJobQueue``: the client over ``httpx.AsyncClient``. Each method does what the
:class:`JobQueue` method of the same name does (its docstring has the arguments, return value
and errors), awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from jobqueue.client import _calls as calls
from jobqueue.client._async_leases import AsyncLeaseMethods
from jobqueue.client._base import (
    DEFAULT_URL,
    client_options,
    final_result,
    job_spec,
    schedule_fields,
)
from jobqueue.client._errors import JobQueueClientError, WaitTimeout, error_for
from jobqueue.client._models import (
    Attempt,
    Job,
    JobPage,
    JobSpec,
    ProcessList,
    Queue,
    QueueState,
    Schedule,
)
from jobqueue.client._retry import Call, connection_failed, parse_answer, retry_delay

T = TypeVar("T")

_pause = asyncio.sleep  # the wait between retries (tests replace it)


class AsyncJobQueue(AsyncLeaseMethods):
    """The asyncio client of a jobqueue service, over one ``httpx.AsyncClient``: the same
    methods as :class:`JobQueue`, each a coroutine (:meth:`list` an async iterator). Use it in
    an ``async with`` block, or await :meth:`aclose` when done.

    Args:
        url: the service's base URL.
        key: an API key, sent as ``Authorization: Bearer <key>``.
        timeout: the socket timeout of a request, seconds (a long-poll's is longer).
        retries: how many times a request that is safe to repeat may be sent again (0: never).
        transport: an httpx async transport (``httpx.ASGITransport(app)``,
            ``httpx.MockTransport``).

    Raises:
        ValueError: ``timeout`` is not positive or ``retries`` is negative.

    Example::

        async with AsyncJobQueue("http://127.0.0.1:8000") as jq:
            job = await jq.enqueue("echo", {"n": 1})
            print(await jq.wait(job.id, timeout=30))
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self._http = httpx.AsyncClient(
            transport=transport, **client_options(url, key, timeout, retries)
        )

    @property
    def url(self) -> str:
        """The service's base URL."""
        return str(self._http.base_url).rstrip("/")

    async def aclose(self) -> None:
        """Close the connections. The client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncJobQueue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self, call: Call[T]) -> T:
        """Send ``call``, again after a retryable failure; its parsed answer."""
        retries_done = 0
        while True:
            cause: httpx.TransportError | None = None
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.body,
                    timeout=httpx.USE_CLIENT_DEFAULT if call.timeout is None else call.timeout,
                )
            except httpx.TransportError as exc:
                cause = exc
                error: JobQueueClientError = connection_failed(exc)
            else:
                if response.status_code < 400:
                    return parse_answer(call, response)
                error = error_for(response)
            delay = retry_delay(call, error, cause, retries_done, self.retries)
            if delay is None:
                raise error from cause
            await _pause(delay)
            retries_done += 1

    # --- jobs

    async def enqueue(
        self,
        task: str,
        payload: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | str | None = None,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
        description: str | None = None,
    ) -> Job:
        """Create a job: see :meth:`JobQueue.enqueue`."""
        spec = job_spec(
            task,
            payload,
            queue=queue,
            priority=priority,
            delay_seconds=delay_seconds,
            run_at=run_at,
            max_attempts=max_attempts,
            timeout_seconds=timeout_seconds,
            idempotency_key=idempotency_key,
            description=description,
        )
        return await self._run(calls.enqueue(spec))

    async def enqueue_many(self, jobs: Iterable[JobSpec | Mapping[str, Any]]) -> list[int]:
        """Create jobs all or nothing; their ids: see :meth:`JobQueue.enqueue_many`."""
        return await self._run(calls.enqueue_many(jobs))

    async def get(self, job_id: int, wait_seconds: float | None = None) -> Job:
        """One job, optionally a long-poll: see :meth:`JobQueue.get`."""
        return await self._run(calls.get(job_id, wait_seconds, self.timeout))

    # The deadline is the service's long-poll's, in its requests: asyncio.timeout cannot say it.
    async def wait(self, job_id: int, timeout: float) -> Any:  # noqa: ASYNC109
        """Wait for a job's result: see :meth:`JobQueue.wait` (raises :class:`JobFailed`,
        :class:`JobCancelled`, :class:`WaitTimeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            step = min(calls.MAX_WAIT_SECONDS, deadline - time.monotonic())
            job = await self.get(job_id, wait_seconds=step if step >= 0.001 else None)
            if job.is_final:
                return final_result(job)
            if time.monotonic() >= deadline:
                raise WaitTimeout(job, timeout)

    async def attempts(self, job_id: int) -> list[Attempt]:
        """Every attempt of a job: see :meth:`JobQueue.attempts`."""
        return await self._run(calls.attempts(job_id))

    async def list_page(
        self,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs: see :meth:`JobQueue.list_page`."""
        return await self._run(calls.list_page(status, queue, task, limit, cursor))

    async def cancel(self, job_id: int) -> Job:
        """Cancel a job: see :meth:`JobQueue.cancel`."""
        return await self._run(calls.cancel(job_id))

    async def retry(self, job_id: int) -> Job:
        """Put a failed or cancelled job back to todo: see :meth:`JobQueue.retry`."""
        return await self._run(calls.retry(job_id))

    # --- queues and processes

    async def queues(self) -> list[Queue]:
        """Every queue: see :meth:`JobQueue.queues`."""
        return await self._run(calls.queues())

    async def pause(self, queue: str) -> QueueState:
        """Pause a queue: see :meth:`JobQueue.pause`."""
        return await self._run(calls.pause(queue, True))

    async def resume(self, queue: str) -> QueueState:
        """Resume a queue: see :meth:`JobQueue.resume`."""
        return await self._run(calls.pause(queue, False))

    async def workers(self) -> ProcessList:
        """The live processes: see :meth:`JobQueue.workers`."""
        return await self._run(calls.workers())

    # --- schedules

    async def schedules(self) -> list[Schedule]:
        """Every schedule: see :meth:`JobQueue.schedules`."""
        found: list[Schedule] = []
        after: str | None = ""
        while after is not None:
            page, after = await self._run(calls.schedules_page(after))
            found.extend(page)
        return found

    async def get_schedule(self, name: str) -> Schedule:
        """One schedule: see :meth:`JobQueue.get_schedule`."""
        return await self._run(calls.get_schedule(name))

    async def create_schedule(
        self,
        name: str,
        cron: str,
        task: str,
        *,
        payload: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        timezone: str | None = None,
    ) -> Schedule:
        """Define a schedule: see :meth:`JobQueue.create_schedule`."""
        fields = {"name": name, **schedule_fields(cron, task, payload, queue, priority, timezone)}
        return await self._run(calls.create_schedule(fields))

    async def update_schedule(
        self,
        name: str,
        *,
        cron: str | None = None,
        task: str | None = None,
        payload: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        timezone: str | None = None,
    ) -> Schedule:
        """Change some fields of a schedule: see :meth:`JobQueue.update_schedule`."""
        changes = schedule_fields(cron, task, payload, queue, priority, timezone)
        return await self._run(calls.update_schedule(name, changes))

    async def pause_schedule(self, name: str) -> Schedule:
        """Pause a schedule: see :meth:`JobQueue.pause_schedule`."""
        return await self._run(calls.pause_schedule(name, True))

    async def resume_schedule(self, name: str) -> Schedule:
        """Resume a schedule: see :meth:`JobQueue.resume_schedule`."""
        return await self._run(calls.pause_schedule(name, False))

    async def delete_schedule(self, name: str) -> None:
        """Delete a schedule: see :meth:`JobQueue.delete_schedule`."""
        await self._run(calls.delete_schedule(name))

    # Last, so that the annotations above mean the built-in ``list``.
    async def list(
        self,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int | None = None,
        page_size: int = calls.DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[Job]:
        """Every job that matches, newest first, page by page (``async for``): see
        :meth:`JobQueue.list`."""
        cursor: str | None = None
        given = 0
        while True:
            size = page_size if limit is None else min(page_size, limit - given)
            if size <= 0:
                return
            page = await self.list_page(
                status=status, queue=queue, task=task, limit=size, cursor=cursor
            )
            for job in page.items[:size]:
                yield job
                given += 1
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
