"""``JobQueue``: the client over ``httpx.Client``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from jobqueue.client import _calls as calls
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
from jobqueue.client._sync_leases import SyncLeaseMethods

T = TypeVar("T")

_pause = time.sleep  # the wait between retries (tests replace it)


class JobQueue(SyncLeaseMethods):
    """A client of a jobqueue service (REST API and lease protocol), over one
    ``httpx.Client``, so that its connections are reused. Use it in a ``with`` block, or call
    :meth:`close` when done.

    Every method raises :class:`ApiError` (a subclass per status: :class:`NotFound`,
    :class:`Conflict`, ...) when the service answers an error, and :class:`ConnectionFailed`
    when it does not answer. A call that is safe to repeat is sent again after a 503, a 429 or
    a failed connection, up to ``retries`` times, with exponential backoff and jitter, honouring
    ``Retry-After`` up to 30 s; a call that is not (an enqueue without an idempotency key, a
    retry, a lease) is sent again only when it certainly never left (the connection could not
    be made), and a lease also after a 429, which leased nothing. Each method's docstring says
    which it is.

    Attributes:
        timeout: the socket timeout of a request, seconds.
        retries: how many times a request may be sent again.

    Args:
        url: the service's base URL.
        key: an API key, sent as ``Authorization: Bearer <key>`` (needed when the service has
            ``JOBQUEUE_API_KEYS``).
        timeout: the socket timeout of a request, seconds (a long-poll's is longer than its
            wait).
        retries: how many times a request may be sent again (0: never); a call sends at most
            ``retries + 1`` requests.
        transport: an httpx transport to send requests with (``httpx.MockTransport`` in tests).

    Raises:
        ValueError: ``timeout`` is not positive or ``retries`` is negative.

    Example::

        with JobQueue("http://127.0.0.1:8000") as jq:
            job = jq.enqueue("echo", {"n": 1})
            print(jq.wait(job.id, timeout=30))   # {'echo': {'n': 1}}
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self._http = httpx.Client(transport=transport, **client_options(url, key, timeout, retries))

    @property
    def url(self) -> str:
        """The service's base URL."""
        return str(self._http.base_url).rstrip("/")

    def close(self) -> None:
        """Close the connections. The client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        """Send ``call``, again after a retryable failure; its parsed answer."""
        retries_done = 0
        while True:
            cause: httpx.TransportError | None = None
            try:
                response = self._http.request(
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
            _pause(delay)
            retries_done += 1

    # --- jobs

    def enqueue(
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
        """Create a job (``POST /jobs``); an idle worker starts it within milliseconds.

        Args:
            task: a registered task's name (``echo``, ``sleep``, ``http``, yours).
            payload: a JSON object for the task (None: ``{}``).
            queue: the queue (None: ``default``).
            priority: -100 to 100, higher runs first (None: 0).
            delay_seconds: first run after this many seconds (not with ``run_at``).
            run_at: first run not before this time: an aware datetime or RFC 3339 text.
            max_attempts: attempts in all, 1 to 1000 (None: the service's default).
            timeout_seconds: each attempt's limit, seconds (None: the service's default).
            idempotency_key: the same key with the same request gives the same job, not a new
                one; with it the call is safe to repeat and is retried.
            description: free text for people.

        Returns:
            The job (status ``todo``; the existing job when the key named one).

        Raises:
            ValidationFailed: an unknown task or queue, a bad field (the detail says which).
            IdempotencyConflict: the key names a job made from a different request.
            ApiError: another error answer (413 payload too large, 401, 403, 503, ...).
            ConnectionFailed: no answer. Without an idempotency key, the job may have been
                created (``request_sent`` says whether the request could have arrived).
        """
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
        return self._run(calls.enqueue(spec))

    def enqueue_many(self, jobs: Iterable[JobSpec | Mapping[str, Any]]) -> list[int]:
        """Create 1 to 10,000 jobs all or nothing (``POST /jobs/batch``).

        Args:
            jobs: :class:`JobSpec` objects, or dicts with the fields of ``POST /jobs``
                (``{"task": "echo", "payload": {...}, "idempotency_key": "..."}``). When every
                one has an idempotency key the call is safe to repeat and is retried.

        Returns:
            The jobs' ids in the order given (an existing job's id for a spec whose key named
            one).

        Raises:
            ValidationFailed: a bad spec (the detail names its index: ``jobs[3]: ...``).
            IdempotencyConflict: a spec's key names a job made from a different request.
            ApiError, ConnectionFailed: as :meth:`enqueue`.
        """
        return self._run(calls.enqueue_many(jobs))

    def get(self, job_id: int, wait_seconds: float | None = None) -> Job:
        """One job (``GET /jobs/{id}``); with ``wait_seconds``, a long-poll that answers as
        soon as the job is done, failed or cancelled, or after that many seconds with its
        status then. Safe to repeat.

        Args:
            job_id: the job's id.
            wait_seconds: wait up to this long (above 0, at most 60 s) for the job to end; the
                request's socket timeout is this plus 10 s at least.

        Raises:
            NotFound: there is no such job.
            TooManyRequests: too many long-polls wait on the service (after the retries).
            ValidationFailed: ``wait_seconds`` out of range.
        """
        return self._run(calls.get(job_id, wait_seconds, self.timeout))

    def wait(self, job_id: int, timeout: float) -> Any:
        """Wait for a job to end and return its result, with long-polls of at most 60 s.

        Args:
            job_id: the job's id.
            timeout: give up after this many seconds (0: look once).

        Returns:
            The job's result (any JSON value) once it is ``done``.

        Raises:
            JobFailed: it ended ``failed`` (``.error`` and ``.job`` say how).
            JobCancelled: it ended ``cancelled``.
            WaitTimeout: it had not ended after ``timeout`` seconds (also a ``TimeoutError``).
            NotFound: there is no such job.
        """
        deadline = time.monotonic() + timeout
        while True:
            step = min(calls.MAX_WAIT_SECONDS, deadline - time.monotonic())
            job = self.get(job_id, wait_seconds=step if step >= 0.001 else None)
            if job.is_final:
                return final_result(job)
            if time.monotonic() >= deadline:
                raise WaitTimeout(job, timeout)

    def attempts(self, job_id: int) -> list[Attempt]:
        """Every attempt of a job, oldest first (``GET /jobs/{id}/attempts``).

        Raises:
            NotFound: there is no such job.
        """
        return self._run(calls.attempts(job_id))

    def list_page(
        self,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first (``GET /jobs``); :meth:`list` walks every page.

        Args:
            status: only jobs in this status (``todo``, ``in_progress``, ``done``, ...).
            queue: only this queue.
            task: only this task.
            limit: at most this many jobs, 1 to 1000 (a page may hold fewer and still have a
                next one: it also ends before 8 MiB of payloads and results).
            cursor: the ``next_cursor`` of the page before.

        Raises:
            ValidationFailed: a bad filter or limit.
            BadRequest: a cursor this service did not issue.
        """
        return self._run(calls.list_page(status, queue, task, limit, cursor))

    def cancel(self, job_id: int) -> Job:
        """Cancel a job (``POST /jobs/{id}/cancel``, admin). Safe to repeat.

        A ``todo`` job is ``cancelled`` at once; an ``in_progress`` one's worker is told to
        stop (the answer is still ``in_progress`` with ``cancel_requested_at`` set, and it
        ends ``cancelled``); a ``cancelled`` one stays so.

        Raises:
            NotFound: there is no such job.
            Conflict: the job is ``done`` or ``failed``.
        """
        return self._run(calls.cancel(job_id))

    def retry(self, job_id: int) -> Job:
        """Put a ``failed`` or ``cancelled`` job back to ``todo`` with fresh attempts
        (``POST /jobs/{id}/retry``, admin). Not retried once sent: a repeat would fail with
        409, or run the job once more if it failed again in between.

        Raises:
            NotFound: there is no such job.
            Conflict: the job is ``todo``, ``in_progress`` or ``done``.
        """
        return self._run(calls.retry(job_id))

    # --- queues and processes

    def queues(self) -> list[Queue]:
        """Every queue with its jobs per status, pause state, slots online and the age of
        its oldest due job (``GET /queues``)."""
        return self._run(calls.queues())

    def pause(self, queue: str) -> QueueState:
        """Pause a queue: no process claims its jobs until it is resumed (admin). Safe to
        repeat.

        Raises:
            NotFound: the queue is not known.
        """
        return self._run(calls.pause(queue, True))

    def resume(self, queue: str) -> QueueState:
        """Resume a paused queue (admin). Safe to repeat.

        Raises:
            NotFound: the queue is not known.
        """
        return self._run(calls.pause(queue, False))

    def workers(self) -> ProcessList:
        """The live jobqueue processes and remote workers, with their slots
        (``GET /workers``)."""
        return self._run(calls.workers())

    # --- schedules

    def schedules(self) -> list[Schedule]:
        """Every schedule, by name (``GET /schedules``, all pages)."""
        found: list[Schedule] = []
        after: str | None = ""
        while after is not None:
            page, after = self._run(calls.schedules_page(after))
            found.extend(page)
        return found

    def get_schedule(self, name: str) -> Schedule:
        """One schedule (``GET /schedules/{name}``).

        Raises:
            NotFound: there is no such schedule.
        """
        return self._run(calls.get_schedule(name))

    def create_schedule(
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
        """Define a schedule (``POST /schedules``, admin): from its first slot after now,
        each slot creates one job. Not retried once sent (a repeat would find the name taken).

        Args:
            name: 1 to 100 of ``A-Za-z0-9_.:-``.
            cron: five cron fields (``0 3 * * *``) or ``@hourly``, ``@daily``, ...
            task: the task of each job.
            payload: each job's payload (None: ``{}``).
            queue: each job's queue (None: ``default``).
            priority: each job's priority (None: 0).
            timezone: the IANA time zone of the cron fields (None: UTC).

        Raises:
            Conflict: the name is taken.
            ValidationFailed: a bad cron expression, time zone, task, queue or payload.
        """
        fields = {"name": name, **schedule_fields(cron, task, payload, queue, priority, timezone)}
        return self._run(calls.create_schedule(fields))

    def update_schedule(
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
        """Change some fields of a schedule (``PATCH /schedules/{name}``, admin); a field
        left None stays. A new cron or time zone moves the next slot to the first after now.
        Safe to repeat.

        Raises:
            NotFound: there is no such schedule.
            ValidationFailed: as :meth:`create_schedule`.
        """
        changes = schedule_fields(cron, task, payload, queue, priority, timezone)
        return self._run(calls.update_schedule(name, changes))

    def pause_schedule(self, name: str) -> Schedule:
        """Pause a schedule: no slot fires until it is resumed (admin). Safe to repeat.

        Raises:
            NotFound: there is no such schedule.
        """
        return self._run(calls.pause_schedule(name, True))

    def resume_schedule(self, name: str) -> Schedule:
        """Resume a schedule: its next slot is the first after now (admin). Safe to repeat.

        Raises:
            NotFound: there is no such schedule.
        """
        return self._run(calls.pause_schedule(name, False))

    def delete_schedule(self, name: str) -> None:
        """Delete a schedule; the jobs it created stay (admin). Not retried once sent (a
        repeat would answer 404).

        Raises:
            NotFound: there is no such schedule.
        """
        self._run(calls.delete_schedule(name))

    # Last, so that the annotations above mean the built-in ``list``.
    def list(
        self,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int | None = None,
        page_size: int = calls.DEFAULT_PAGE_SIZE,
    ) -> Iterator[Job]:
        """Every job that matches, newest first, walking the pages of ``GET /jobs`` as the
        iteration goes (one request per ``page_size`` jobs). No job is skipped or repeated
        while others are created.

        Args:
            status: only jobs in this status.
            queue: only this queue.
            task: only this task.
            limit: stop after this many jobs (None: all of them).
            page_size: jobs per request, 1 to 1000.

        Raises:
            ValidationFailed: a bad filter or page size (at the first ``next()``).
        """
        cursor: str | None = None
        given = 0
        while True:
            size = page_size if limit is None else min(page_size, limit - given)
            if size <= 0:
                return
            page = self.list_page(status=status, queue=queue, task=task, limit=size, cursor=cursor)
            for job in page.items[:size]:
                yield job
                given += 1
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
