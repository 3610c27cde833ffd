"""Run Python functions as jobqueue tasks in any process, over the HTTP lease API
(docs/workers.md, "Python worker").

Example::

    from jobqueue.client import Discard, RetryLater, TaskContext, Worker

    worker = Worker("http://jobqueue:8000", key="…", queues=["images"], concurrency=20)

    @worker.task("resize")
    async def resize(payload: dict, ctx: TaskContext) -> dict:
        if ctx.attempt == 1 and not uploaded(payload["src"]):
            raise RetryLater(5, "not uploaded yet")     # retry in 5 s
        return {"width": payload["width"] // 2}          # the job's result (JSON)

    worker.run_sync()   # until SIGTERM or Ctrl-C (then a graceful shutdown)

How it works (each rule from docs/workers.md, "Rules a worker must follow"):

- **One lease loop** long-polls ``POST /leases`` for as many jobs as there are free slots
  (``max_jobs`` = ``concurrency`` minus the jobs running: a slot is free once its attempt has
  ended, while its report is on its way; leases held stay under twice ``concurrency`` and
  1,000), of the registered tasks only. When the service cannot be reached or answers 503 or
  429, it backs off (0.5 s doubling to 30 s, jittered) and tries again: it never stops on an
  error.
- **Each job runs in an asyncio task of its own**, under the job's ``timeout_seconds``. An
  ``async def`` function runs on the event loop; a plain function runs on a thread pool of
  ``concurrency`` daemon threads (its timeout counted from the moment a thread starts it). As in
  the in-process runner (``jobqueue/worker/runner.py``): a value returned completes the job; an
  exception fails it (retryable); :class:`Discard` fails it for good; :class:`RetryLater` asks for
  a retry after its delay; a timeout is a retryable failure. Python cannot stop a thread, so a
  plain function that runs past its timeout or its cancellation is abandoned (its result
  ignored); so is an ``async def`` function that ignores its cancellation for
  :data:`STOP_GRACE_SECONDS` (checked at each heartbeat).
- **One heartbeat loop** sends one batched heartbeat for every lease held, every
  ``heartbeat_seconds`` (the smallest of the held leases'). ``lost``: the attempt is cancelled
  and its outcome dropped (another worker may run the job now). ``cancel_requested``: the attempt
  is cancelled and reported failed, retryable (the service makes the job ``cancelled``).
  ``busy``: nothing. ``drain``: leasing pauses for :attr:`Worker.drain_pause_seconds`.
- **Reports** are group-committed: what finishes while one ``POST /leases/complete`` (or
  ``/fail``) is on its way goes in the next batch (as the in-process completer does). They are
  retried with backoff while the service is down, until the lease would have expired (then the
  job will be rescued: give up). A lost lease is logged and dropped.
- **Shutdown** (:meth:`Worker.stop`, SIGTERM or SIGINT under :meth:`Worker.run_sync`): leasing
  stops; running jobs get ``grace_seconds`` to finish and report; the rest are cancelled and
  released in one ``POST /leases/release`` (their attempt is not counted).

Logs go to the standard :mod:`logging` module, logger ``jobqueue.client.worker``, one line per
transition, ``event key=value …``.

Tasks for ``jobqueue remote-worker --tasks myapp.tasks`` are registered with the
:func:`remote_task` decorator in the modules named (:data:`default_tasks`)::

    from jobqueue.client import remote_task

    @remote_task("resize")
    def resize(payload: dict) -> dict: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import math
import os
import queue
import random
import re
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import httpx

from jobqueue.client._async import AsyncJobQueue
from jobqueue.client._errors import (
    ApiError,
    ConnectionFailed,
    JobQueueClientError,
    ServiceUnavailable,
    TooManyRequests,
)

log = logging.getLogger("jobqueue.client.worker")

# --- the lease client this worker needs (jobqueue.client.AsyncJobQueue) ---------------------

# Answers after which nothing was done and a later try may work: back off and try again.
_SERVICE_DOWN = (ServiceUnavailable, ConnectionFailed, TooManyRequests)


class LeasedJobLike(Protocol):
    """A leased job, as ``AsyncJobQueue.lease`` gives it (``LeasedJob``)."""

    @property
    def id(self) -> int: ...
    @property
    def queue(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def payload(self) -> Any: ...
    @property
    def attempt(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def timeout_seconds(self) -> float: ...


class LeaseLike(Protocol):
    """One lease (``Lease``): its opaque token, its job, its length and heartbeat interval."""

    @property
    def token(self) -> str: ...
    @property
    def job(self) -> LeasedJobLike: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def lease_seconds(self) -> float: ...
    @property
    def heartbeat_seconds(self) -> float: ...


class LeaseBatchLike(Protocol):
    """The answer of ``POST /leases`` (``LeaseBatch``)."""

    @property
    def leases(self) -> Sequence[LeaseLike]: ...
    @property
    def drain(self) -> bool: ...


class HeartbeatItemLike(Protocol):
    """One lease in a heartbeat's answer; ``status`` is ``extended``, ``lost`` or ``busy``."""

    @property
    def token(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def cancel_requested(self) -> bool: ...


class HeartbeatAnswerLike(Protocol):
    """The answer of ``POST /leases/heartbeat`` (``HeartbeatAnswer``)."""

    @property
    def leases(self) -> Sequence[HeartbeatItemLike]: ...
    @property
    def drain(self) -> bool: ...


class ReportLike(Protocol):
    """The answer of complete, fail and release (``Report``)."""

    @property
    def job_id(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def repeated(self) -> bool: ...
    @property
    def token(self) -> str | None: ...


class LeaseClient(Protocol):
    """The lease methods of ``jobqueue.client.AsyncJobQueue`` the worker calls; a test passes
    a fake. Reports go in batches (``POST /leases/complete``, ``/fail``, ``/release``): a lost
    lease is an item with ``status`` ``lease_lost``. Errors: ``ServiceUnavailable`` (503),
    ``TooManyRequests`` (429), ``ConnectionFailed`` (transport), other ``ApiError``s (4xx/5xx;
    a batch refused with 422 wrote nothing)."""

    async def lease(
        self,
        queues: Sequence[str],
        *,
        tasks: Sequence[str] | None = None,
        max_jobs: int = 1,
        lease_seconds: float | None = None,
        wait_seconds: float = 0.0,
        worker: str | dict[str, Any] | None = None,
    ) -> LeaseBatchLike: ...

    async def heartbeat(
        self, tokens: Sequence[str], lease_seconds: float | None = None
    ) -> HeartbeatAnswerLike: ...

    async def complete_many(self, items: Iterable[tuple[str, Any]]) -> Sequence[ReportLike]: ...

    async def fail_many(self, failures: Iterable[Mapping[str, Any]]) -> Sequence[ReportLike]: ...

    async def release_many(self, tokens: Sequence[str]) -> Sequence[ReportLike]: ...

    async def aclose(self) -> None: ...


# --- what a task raises and sees -----------------------------------------------------------

MAX_ERROR_CHARS = 4000
"""Error messages and tracebacks sent with a failure are cut to this many characters (the
service's own limit, docs/workers.md; a traceback keeps its end)."""

MAX_RETRY_DELAY_SECONDS = 366 * 86_400 * 10
"""The longest :class:`RetryLater` delay, seconds (ten years, as the service's)."""


class Discard(Exception):
    """Raise from a task to fail its job at once, without the retries it has left
    (``retryable: false``)."""


class RetryLater(Exception):
    """Raise from a task to retry its job after ``delay_seconds`` instead of the service's
    backoff (``retry_delay_seconds``). The attempt still counts: with none left the job ends
    ``failed``.

    Args:
        delay_seconds: seconds from now before the next attempt; negative is 0, more than ten
            years (infinity included) is ten years.
        message: why, stored as the attempt's error.

    Raises:
        ValueError: ``delay_seconds`` is NaN.
    """

    def __init__(self, delay_seconds: float, message: str = "retry requested") -> None:
        delay = float(delay_seconds)
        if math.isnan(delay):
            raise ValueError("RetryLater needs a number of seconds; got NaN")
        self.delay_seconds = min(max(delay, 0.0), float(MAX_RETRY_DELAY_SECONDS))
        super().__init__(message)


class UnknownTask(Exception):
    """A leased job names a task this worker has no function for (it was not asked for)."""


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a running task may know of its job: the second argument of a task function that
    takes two.

    Attributes:
        job_id: the job's id.
        queue: the queue it was leased from.
        task: the task name.
        attempt: this attempt's number, 1 for the first run.
        max_attempts: how many attempts the job may use in all.
        timeout_seconds: this attempt's time limit, seconds.
        cancel_event: set when the attempt must stop (its timeout, a cancel request, a lost
            lease, shutdown). An ``async def`` task is also cancelled; a plain function cannot
            be, so a long one should check it (``ctx.cancel_event.is_set()``) and return.
    """

    job_id: int
    queue: str
    task: str
    attempt: int
    max_attempts: int
    timeout_seconds: float
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        """Whether the attempt was told to stop (:attr:`cancel_event` is set)."""
        return self.cancel_event.is_set()


# --- the tasks ---------------------------------------------------------------------------

TASK_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")
"""What the service accepts as a task name."""
WORKER_NAME = re.compile(r"[A-Za-z0-9_.:@\-]{1,100}")
"""What the service accepts as a worker name (docs/workers.md, ``worker``)."""
MAX_TASKS = 256
"""The most task names one lease request may name."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class RemoteTask:
    """A registered function: ``function(payload)`` or ``function(payload, ctx)``.

    Attributes:
        name: the task name jobs are created with.
        function: ``async def`` or plain.
        is_async: whether it is a coroutine function (runs on the event loop).
        wants_context: whether it takes a second positional argument (:class:`TaskContext`).
    """

    name: str
    function: Callable[..., Any]
    is_async: bool
    wants_context: bool


def _takes_context(function: Callable[..., Any]) -> bool:
    """Whether ``function`` accepts a second positional argument (or ``*args``)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: payload only
        return False
    positional = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
    return positional >= 2


class RemoteTasks:
    """Task names to functions. :data:`default_tasks` is the one :func:`remote_task` fills and
    ``jobqueue remote-worker`` runs; each :class:`Worker` has its own unless given one."""

    def __init__(self) -> None:
        self._tasks: dict[str, RemoteTask] = {}

    def register(self, name: str, function: Callable[..., Any]) -> RemoteTask:
        """Add ``function`` as task ``name``.

        Raises:
            ValueError: ``name`` is not 1 to 200 of ``A-Za-z0-9_.:-`` (no job could name it),
                or another function has it already.
        """
        if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
            raise ValueError(f"task name {str(name)[:200]!r} is not 1 to 200 of A-Za-z0-9_.:-")
        existing = self._tasks.get(name)
        if existing is not None and existing.function is not function:
            raise ValueError(f"task name {name!r} is registered twice")
        entry = RemoteTask(
            name, function, inspect.iscoroutinefunction(function), _takes_context(function)
        )
        self._tasks[name] = entry
        return entry

    def task(self, name: str) -> Callable[[F], F]:
        """Decorator form of :meth:`register`; returns the function unchanged."""

        def decorate(function: F) -> F:
            self.register(name, function)
            return function

        return decorate

    def get(self, name: str) -> RemoteTask | None:
        """The task called ``name``, or None."""
        return self._tasks.get(name)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)


default_tasks = RemoteTasks()
"""The tasks :func:`remote_task` registers, run by ``jobqueue remote-worker``."""


def remote_task(name: str) -> Callable[[F], F]:
    """Register a function as task ``name`` in :data:`default_tasks` (for ``jobqueue
    remote-worker --tasks <module>``). The function takes the payload, and optionally a
    :class:`TaskContext` as a second argument; ``async def`` or plain.

    Raises:
        ValueError: a bad name, or a name taken by another function.
    """
    return default_tasks.task(name)


# --- the thread pool of plain functions ----------------------------------------------------


class _ThreadTimeout(TimeoutError):
    """A plain function ran past its timeout, counted from its start in a thread."""


@dataclass(eq=False)
class _Work:
    function: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    started: asyncio.Event
    done: asyncio.Future[Any]
    skip: bool = False  # given up before a thread took it


class _Threads:
    """At most ``size`` daemon threads for plain functions, started as needed. Daemon threads,
    so that a function that never returns cannot hold the process at exit (a
    ``ThreadPoolExecutor``'s threads are joined then)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._waiting = 0

    async def run(self, function: Callable[[], Any], timeout_seconds: float) -> Any:
        """``function()`` in a thread: its result, or its exception re-raised.

        Raises:
            _ThreadTimeout: it ran longer than ``timeout_seconds`` from its start; it is
                abandoned (runs on, its result ignored).
            asyncio.CancelledError: the caller was cancelled; the function is abandoned.
        """
        loop = asyncio.get_running_loop()
        work = _Work(function, loop, asyncio.Event(), loop.create_future())
        self._submit(work)
        try:
            await work.started.wait()
            async with asyncio.timeout(timeout_seconds):
                return await work.done
        except TimeoutError as exc:
            raise _ThreadTimeout(f"ran past {timeout_seconds:g} s") from exc
        finally:
            work.skip = True

    def _submit(self, work: _Work) -> None:
        with self._lock:
            self._waiting += 1
            spawn = self._waiting > self._idle and self._threads < self.size
            if spawn:
                self._threads += 1
        self._queue.put(work)
        if spawn:
            name = f"jobqueue-remote-{self._threads}"
            threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            work = self._queue.get()
            with self._lock:
                self._idle -= 1
                if work is None:
                    self._threads -= 1
                    return
                self._waiting -= 1
            if work.skip:
                continue
            try:
                work.loop.call_soon_threadsafe(work.started.set)
            except RuntimeError:  # the loop is closed: nobody waits for it
                continue
            outcome: tuple[bool, Any]
            try:
                outcome = (True, work.function())
            except BaseException as exc:  # the task's failure, handed to its attempt
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):
                work.loop.call_soon_threadsafe(_settle, work.done, outcome)

    def close(self) -> None:
        """Stop the threads once idle (a busy one ends when its function returns)."""
        with self._lock:
            count = self._threads
        for _ in range(count):
            self._queue.put(None)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# --- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How an attempt ended: ``error`` None means it returned ``result``."""

    result: Any = None
    error: BaseException | None = None
    size: int = 0  # the result's JSON, characters: what a report batch is bounded by


class _Cancelled(Exception):
    """The attempt's job was cancelled by request while it ran."""


def _failure_fields(exc: BaseException) -> dict[str, Any]:
    """The body of ``fail`` for ``exc``: type, message, traceback (cut to
    :data:`MAX_ERROR_CHARS`), whether it may be retried, and after how long."""
    if isinstance(exc, _Cancelled):
        return {"error_type": "Cancelled", "message": str(exc), "retryable": True}
    trace = "".join(traceback.format_exception(exc))
    return {
        "error_type": type(exc).__name__[:200],
        "message": str(exc)[:MAX_ERROR_CHARS],
        "traceback": trace[-MAX_ERROR_CHARS:],
        "retryable": not isinstance(exc, Discard),
        "retry_delay_seconds": exc.delay_seconds if isinstance(exc, RetryLater) else None,
    }


def _result_outcome(value: Any) -> _Outcome:
    """The outcome of an attempt that returned ``value``: a failure when it is not JSON (NaN
    and infinity included), as the in-process runner decides."""
    if value is None:  # most tasks return nothing: the hot path
        return _Outcome(size=4)
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        return _Outcome(error=TypeError(f"the task's result is not JSON-serialisable: {exc}"))
    return _Outcome(result=value, size=size)


# --- the worker ----------------------------------------------------------------------------

STOP_GRACE_SECONDS = 5.0
"""How long an attempt told to stop (a cancel request, a lost lease, its timeout) has to end
before the worker stops waiting for it, seconds (the in-process runner's rule)."""

MAX_BATCH_ITEMS = 1000
"""The most reports one request carries (the service's limit of tokens per batch)."""
MAX_BATCH_CHARACTERS = 1_048_576
"""About the most characters of results (or messages and tracebacks) one report request
carries, far below the service's ``JOBQUEUE_MAX_REQUEST_BYTES``; a larger report goes alone."""

LEASE_LOST = "lease_lost"
LOST = "lost"
CANCEL_REQUESTED = "cancel_requested"
TIMEOUT = "timeout"
SHUTDOWN = "shutdown"


@dataclass(eq=False)
class _Held:
    """A lease this worker holds, from the lease to the end of its report.

    ``expires`` is the lease's end on the event loop's clock, counted from the answer that
    gave it or the request that last extended it. ``stop_reason``
    is why the attempt was told to stop (None: it was not). ``ended`` resolves when the
    attempt ends, or when the worker stops waiting for an attempt told to stop (cheaper per
    job than ``asyncio.wait``).
    """

    lease: LeaseLike
    context: TaskContext
    expires: float
    started: float
    ended: asyncio.Future[None]
    stop_reason: str | None = None
    reporting: bool = False
    attempt: asyncio.Task[_Outcome] | None = None
    handler: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Outgoing:
    """A report waiting for the reporter: a completion (``fields`` None, with ``result``) or a
    failure (the ``fail`` body); ``size`` its characters; ``answer`` gets its answer."""

    held: _Held
    fields: dict[str, Any] | None
    result: Any
    size: int
    answer: asyncio.Future[ReportLike | None]


def _jittered(seconds: float) -> float:
    """``seconds`` less up to half of it, at random (so that workers do not retry in step)."""
    return seconds * random.uniform(0.5, 1.0)


class Worker:
    """Runs registered Python functions on jobs leased over the HTTP lease API.

    Args:
        url: the service's base URL.
        key: an API key with the ``worker`` (or ``admin``) role, when the service has keys.
        queues: lease from these queues, in this order (1 to 32 names).
        concurrency: jobs run at once (1 to 1000); also the number of threads for plain
            functions.
        name: this worker's name on the dashboard and in ``GET /workers`` (1 to 100 of
            ``A-Za-z0-9_.:@-``); default ``<hostname>-<pid>``.
        lease_seconds: each lease's length, seconds (1 to 3600); heartbeats extend it.
        wait_seconds: how long one lease request waits for a job, seconds (0 to 20).
        grace_seconds: at shutdown, how long running jobs may take to finish, seconds.
        client: the lease client (a ``jobqueue.client.AsyncJobQueue`` or a test's fake); None:
            one made from ``url`` and ``key``, closed at the end of :meth:`run`. A client given
            here is left open.
        tasks: the tasks to run (:data:`default_tasks` for ``@remote_task`` functions); None:
            a registry of this worker's own, filled with :meth:`task`.

    Raises:
        ValueError: an argument out of its range.
    """

    backoff_min_seconds = 0.5
    """The first pause after a failed lease or report, seconds; it doubles on each failure."""
    backoff_max_seconds = 30.0
    """The longest pause between two tries, seconds."""
    drain_pause_seconds = 5.0
    """How long leasing pauses when the service says ``drain``, seconds."""
    stop_grace_seconds = STOP_GRACE_SECONDS
    """See :data:`STOP_GRACE_SECONDS`."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        key: str | None = None,
        *,
        queues: Sequence[str] = ("default",),
        concurrency: int = 10,
        name: str | None = None,
        lease_seconds: float = 30.0,
        wait_seconds: float = 10.0,
        grace_seconds: float = 10.0,
        client: LeaseClient | None = None,
        tasks: RemoteTasks | None = None,
    ) -> None:
        self.url = url
        self.key = key
        self.queues = [queues] if isinstance(queues, str) else list(queues)
        self.concurrency = concurrency
        self.host = socket.gethostname()[:100] or "localhost"
        self.name = name if name is not None else _default_name(self.host)
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.grace_seconds = grace_seconds
        self.tasks = tasks if tasks is not None else RemoteTasks()
        self._check()
        self._client = client
        self._held: dict[str, _Held] = {}
        self._running = 0
        # Leases held, running or waiting for their report: at most twice the slots (so that
        # leasing goes on while reports are on their way) and one heartbeat's worth.
        self._max_held = max(self.concurrency, min(2 * self.concurrency, MAX_BATCH_ITEMS))
        self._to_release: list[str] = []
        self._drain_until = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_calls = 0
        # Made again by each run (an event belongs to the loop that first waits on it).
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._has_held = asyncio.Event()
        self._outbox: list[_Outgoing] = []
        self._outbox_ready = asyncio.Event()
        self._threads = _Threads(concurrency)

    def _check(self) -> None:
        problems = []
        if not 1 <= len(self.queues) <= 32:
            problems.append(f"queues must name 1 to 32 queues, got {len(self.queues)}")
        if not 1 <= self.concurrency <= 1000:
            problems.append(f"concurrency must be 1 to 1000, got {self.concurrency}")
        if not WORKER_NAME.fullmatch(self.name):
            problems.append(f"name must be 1 to 100 of A-Za-z0-9_.:@-, got {self.name!r}")
        if not 1 <= self.lease_seconds <= 3600:
            problems.append(f"lease_seconds must be 1 to 3600, got {self.lease_seconds}")
        if not 0 <= self.wait_seconds <= 20:
            problems.append(f"wait_seconds must be 0 to 20, got {self.wait_seconds}")
        if not 0 <= self.grace_seconds < math.inf:
            problems.append(f"grace_seconds must be 0 or more, got {self.grace_seconds}")
        if problems:
            raise ValueError("; ".join(problems))

    def task(self, name: str) -> Callable[[F], F]:
        """Register the decorated function as task ``name`` (see :func:`remote_task`).

        Raises:
            ValueError: a bad name, or a name taken by another function.
        """
        return self.tasks.task(name)

    @property
    def held(self) -> int:
        """Leases held now: jobs running or waiting for their report."""
        return len(self._held)

    def stop(self) -> None:
        """Ask :meth:`run` to stop gracefully (see the module docstring); a second call cuts the
        grace period short. Safe from another thread and from a signal handler; before
        :meth:`run` starts, it makes it return at once."""
        loop = self._loop
        if loop is None:
            self._stop_calls += 1
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._request_stop()
        else:
            loop.call_soon_threadsafe(self._request_stop)

    def _request_stop(self) -> None:
        if self._stopping.is_set():
            self._hurry.set()
        self._stopping.set()

    def run_sync(self) -> int | None:
        """Run until :meth:`stop`, SIGTERM or SIGINT (a second signal cuts the grace short);
        blocks. Returns the signal that stopped it, or None.

        The loop is closed without waiting for tasks still pending (attempts abandoned because
        they ignored their cancellation), which ``asyncio.run`` would wait for, for ever.
        """
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self._run_until_signal())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    run_forever = run_sync

    async def _run_until_signal(self) -> int | None:
        loop = asyncio.get_running_loop()
        received: list[int] = []

        def on_signal(number: int) -> None:
            received.append(number)
            log.info("worker_signal signal=%s", signal.Signals(number).name)
            self.stop()

        installed = []
        for number in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(number, on_signal, number)
                installed.append(number)
        try:
            await self.run()
        finally:
            for number in installed:
                loop.remove_signal_handler(number)
        return received[0] if received else None

    async def run(self) -> None:
        """Lease and run jobs until :meth:`stop`, then shut down gracefully; see the module
        docstring. Cancelling it shuts down at once (running jobs released, no grace) and
        re-raises.

        Raises:
            ValueError: no task is registered, or more than 256.
            RuntimeError: it is running already.
        """
        names = self.tasks.names()
        if not names or len(names) > MAX_TASKS:
            raise ValueError(f"a worker runs 1 to {MAX_TASKS} tasks; it has {len(names)}")
        if self._loop is not None:
            raise RuntimeError("this worker is running already")
        own_client = self._client is None
        client = self._client if self._client is not None else self._make_client()
        self._loop = asyncio.get_running_loop()
        self._stopping, self._hurry = asyncio.Event(), asyncio.Event()
        self._slot_freed, self._has_held = asyncio.Event(), asyncio.Event()
        self._outbox_ready = asyncio.Event()
        for _ in range(self._stop_calls):
            self._request_stop()
        self._threads = _Threads(self.concurrency)
        log.info(
            "worker_started name=%s url=%s queues=%s tasks=%s concurrency=%d",
            self.name,
            self.url,
            ",".join(self.queues),
            ",".join(names),
            self.concurrency,
        )
        leasing = asyncio.create_task(
            self._supervised("leasing", lambda: self._lease_loop(client, names)),
            name="jobqueue-leasing",
        )
        beating = asyncio.create_task(
            self._supervised("heartbeat", lambda: self._heartbeat_loop(client)),
            name="jobqueue-heartbeat",
        )
        reporting = asyncio.create_task(
            self._supervised("reports", lambda: self._report_loop(client)),
            name="jobqueue-reports",
        )
        loops = (leasing, beating, reporting)
        try:
            try:
                await self._stopping.wait()
            except asyncio.CancelledError:
                await self._shutdown(client, loops, grace_seconds=0.0)
                raise
            await self._shutdown(client, loops, grace_seconds=self.grace_seconds)
        finally:
            for task in loops:
                task.cancel()
            self._threads.close()
            if own_client:
                await client.aclose()
            self._loop = None
            self._stop_calls = 0
        log.info("worker_stopped name=%s", self.name)

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop()`` until cancelled; should it raise (a bug: the loops catch what the
        service does), log it with its traceback and start it again after a backoff."""
        delay = self.backoff_min_seconds
        while True:
            try:
                await loop()
            except Exception:
                pause = _jittered(delay)
                log.exception("loop_crashed loop=%s retry_in=%.2f", name, pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.backoff_max_seconds)

    def _make_client(self) -> LeaseClient:
        """An :class:`~jobqueue.client.AsyncJobQueue` for ``url`` and ``key`` (it gives a lease
        call a socket timeout of ``wait_seconds`` + 10 s at least), with a connection for each
        slot kept open: every running job may report at once.

        Raises:
            ValueError: ``url`` is not usable.
        """
        connections = self.concurrency + 2  # the reports, a lease call and a heartbeat
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        transport = httpx.AsyncHTTPTransport(limits=limits)
        return AsyncJobQueue(self.url, self.key, transport=transport)

    # --- leasing -------------------------------------------------------------------------

    async def _lease_loop(self, client: LeaseClient, names: list[str]) -> None:
        """Lease for the free slots until cancelled; back off while the service is down."""
        loop = asyncio.get_running_loop()
        identity = {"name": self.name, "host": self.host, "slots": self.concurrency}
        delay = self.backoff_min_seconds
        while True:
            await self._wait_for_slot()
            pause = self._drain_until - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            try:
                batch = await client.lease(
                    self.queues,
                    tasks=names,
                    max_jobs=self._free_slots(),
                    lease_seconds=self.lease_seconds,
                    wait_seconds=self.wait_seconds,
                    worker=identity,
                )
            except Exception as exc:  # the loop's boundary: nothing may end it
                pause = _jittered(delay)
                _log_failure("lease_failed", exc, retry_in=pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.backoff_max_seconds)
                continue
            delay = self.backoff_min_seconds
            # The service starts a lease as it answers: its end is counted from the answer.
            received = loop.time()
            for lease in batch.leases:
                self._start(lease, received)
            if batch.drain:
                self._pause_leasing()

    def _free_slots(self) -> int:
        """Jobs this worker may lease now: slots not running a job, while fewer than
        ``_max_held`` leases wait for their report."""
        return min(self.concurrency - self._running, self._max_held - len(self._held))

    async def _wait_for_slot(self) -> None:
        while self._free_slots() <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    def _pause_leasing(self) -> None:
        loop = asyncio.get_running_loop()
        if self._drain_until <= loop.time():
            log.info("service_draining pause_seconds=%g", self.drain_pause_seconds)
        self._drain_until = loop.time() + self.drain_pause_seconds

    def _start(self, lease: LeaseLike, received: float) -> None:
        """Hold ``lease`` (got at ``received``, the loop's clock) and run its job in a task of
        its own."""
        loop = asyncio.get_running_loop()
        job = lease.job
        context = TaskContext(
            job.id, job.queue, job.task, job.attempt, job.max_attempts, job.timeout_seconds
        )
        held = _Held(lease, context, received + lease.lease_seconds, received, loop.create_future())
        self._held[lease.token] = held
        self._running += 1  # until its attempt ends (the handler's first step may come later)
        self._has_held.set()
        self._log_job("job_started", held, logging.DEBUG)
        held.handler = asyncio.create_task(
            self._handle(held), name=f"jobqueue-job-{job.id}-{job.attempt}"
        )

    # --- one job -------------------------------------------------------------------------

    async def _handle(self, held: _Held) -> None:
        """Run the attempt, then report its outcome (or drop it, or leave it to be
        released). Its slot is free once the attempt has ended; its lease is held until the
        report is answered."""
        token = held.lease.token
        try:
            try:
                outcome = await self._outcome_of(held)
            finally:
                self._running -= 1
                self._slot_freed.set()
            if held.stop_reason == LOST:
                self._log_job("job_dropped", held, detail="lease lost: never reported")
                return
            if outcome is None:
                if held.stop_reason == SHUTDOWN:
                    self._to_release.append(token)
                    self._log_job("job_stopped", held, logging.INFO, detail="to be released")
                    return
                outcome = self._stopped_outcome(held)
            held.reporting = True
            await self._report(held, outcome)
        except asyncio.CancelledError:
            if not held.reporting:
                self._to_release.append(token)
            raise
        except Exception:  # a bug of ours: the job is left to its lease, the worker goes on
            log.exception("job_error job_id=%d", held.context.job_id)
        finally:
            held.context.cancel_event.set()  # an abandoned plain function may still look
            del self._held[token]
            self._slot_freed.set()
            if not self._held:
                self._has_held.clear()

    def _stopped_outcome(self, held: _Held) -> _Outcome:
        """The outcome of an attempt stopped before it ended (a cancel request, or a timeout
        it ignored)."""
        timeout = held.context.timeout_seconds
        if held.stop_reason == CANCEL_REQUESTED:
            return _Outcome(error=_Cancelled("cancel requested while the job ran"))
        if held.stop_reason == TIMEOUT:
            message = f"attempt exceeded timeout_seconds={timeout:g} and ignored being cancelled"
            return _Outcome(error=TimeoutError(message))
        return _Outcome(error=asyncio.CancelledError("the attempt ended cancelled"))

    async def _outcome_of(self, held: _Held) -> _Outcome | None:
        """Run the attempt; its outcome, or None when it ended cancelled or was abandoned."""
        job = held.lease.job
        attempt = asyncio.create_task(self._call(held), name=f"jobqueue-attempt-{job.id}")
        held.attempt = attempt
        attempt.add_done_callback(lambda _: _resolve(held.ended))
        if held.stop_reason is not None:  # told to stop before it started
            attempt.cancel()
        try:
            await held.ended
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        if not attempt.done():
            self._log_job("attempt_abandoned", held, reason=held.stop_reason)
            return None
        if attempt.cancelled():
            return None
        error = attempt.exception()
        return _Outcome(error=error) if error is not None else attempt.result()

    async def _call(self, held: _Held) -> _Outcome:
        """The task's function on the job's payload, under its timeout: how it ended.

        Cancellation of this attempt propagates; every other exception (``SystemExit`` and
        ``KeyboardInterrupt`` raised by the task included) is a failed attempt, as is a
        ``CancelledError`` the task raises on its own.
        """
        job, context = held.lease.job, held.context
        entry = self.tasks.get(job.task)
        if entry is None:
            return _Outcome(error=UnknownTask(f"task {job.task!r} is not registered here"))
        args = (job.payload, context) if entry.wants_context else (job.payload,)
        timeout = job.timeout_seconds
        deadline = asyncio.timeout(timeout) if entry.is_async else None
        try:
            if deadline is not None:
                async with deadline:
                    value = await entry.function(*args)
            else:
                value = await self._threads.run(lambda: entry.function(*args), timeout)
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is None or current.cancelling():
                raise
            return _Outcome(error=exc)
        except BaseException as exc:
            expired = deadline is not None and deadline.expired()
            if (expired and isinstance(exc, TimeoutError)) or isinstance(exc, _ThreadTimeout):
                context.cancel_event.set()
                exc = TimeoutError(f"attempt exceeded timeout_seconds={timeout:g}")
            return _Outcome(error=exc)
        if deadline is not None and deadline.expired():
            message = f"attempt exceeded timeout_seconds={timeout:g} and ignored being cancelled"
            return _Outcome(error=TimeoutError(message))
        return _result_outcome(value)

    def _stop_attempt(self, held: _Held, reason: str) -> None:
        """Tell ``held``'s attempt to stop for ``reason`` (cancel it, set its context's
        ``cancel_event``); stop waiting for it :attr:`stop_grace_seconds` later. ``lost``
        overrides any earlier reason (its outcome is never reported); others keep the first."""
        if held.stop_reason is not None and reason != LOST:
            return
        first = held.stop_reason is None
        held.stop_reason = reason
        held.context.cancel_event.set()
        if held.reporting or not first:
            return
        if held.attempt is not None:
            held.attempt.cancel()
        asyncio.get_running_loop().call_later(self.stop_grace_seconds, _resolve, held.ended)

    # --- reports -------------------------------------------------------------------------

    async def _report(self, held: _Held, outcome: _Outcome) -> None:
        """Complete or fail the job (:meth:`_send`); a result the service refuses (e.g. 422:
        over ``JOBQUEUE_MAX_RESULT_BYTES``) fails the attempt instead."""
        error = outcome.error
        if error is None:
            try:
                report = await self._send(held, None, outcome.result, outcome.size)
            except ApiError as exc:
                error = exc
            else:
                if report is not None:
                    self._log_report(held, report)
                return
        fields = _failure_fields(error)
        size = len(fields["message"]) + len(fields.get("traceback") or "")
        try:
            report = await self._send(held, fields, None, size)
        except ApiError as exc:
            _log_failure("report_refused", exc, job_id=held.context.job_id)
            return
        if report is not None:
            self._log_report(held, report, fields)

    async def _send(
        self, held: _Held, fields: dict[str, Any] | None, result: Any, size: int
    ) -> ReportLike | None:
        """Queue one report for the reporter (:meth:`_report_loop`) and wait for its answer:
        None when the lease was lost or the report given up (see :meth:`_deliver`).

        Raises:
            ApiError: the service refused this report (nothing was written).
        """
        answer: asyncio.Future[ReportLike | None] = asyncio.get_running_loop().create_future()
        self._outbox.append(_Outgoing(held, fields, result, size, answer))
        self._outbox_ready.set()
        return await answer

    async def _report_loop(self, client: LeaseClient) -> None:
        """Group-commit reports: everything queued while the last batch was on its way goes in
        the next one (:data:`MAX_BATCH_ITEMS` and about :data:`MAX_BATCH_CHARACTERS` at most
        per request), completions and failures side by side."""
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            waiting = [item for item in self._outbox if not item.answer.done()]
            self._outbox = []
            batches = [
                *_batches([item for item in waiting if item.fields is None]),
                *_batches([item for item in waiting if item.fields is not None]),
            ]
            await asyncio.gather(*(self._deliver(client, batch) for batch in batches))

    async def _deliver(self, client: LeaseClient, items: list[_Outgoing]) -> None:
        """Send one batch of reports of one kind and hand each its answer. While the service is
        down: tried again with backoff, each report until the next try would come after its
        lease's end (the job will be rescued: given up, None) or its lease is lost. An item
        whose lease is lost: logged, None. A batch refused (422: nothing was written): each
        report sent alone, so that only the one at fault gets the error."""
        delay = self.backoff_min_seconds
        while items:
            try:
                reports = await self._post(client, items)
            except _SERVICE_DOWN as exc:
                pause = _jittered(delay)
                items = [item for item in items if self._still_worth(item, exc, pause)]
                if items:
                    _log_failure("report_failed", exc, retry_in=pause, reports=len(items))
                    await asyncio.sleep(pause)
                    delay = min(delay * 2, self.backoff_max_seconds)
                continue
            except ApiError as exc:
                if len(items) == 1:
                    _settle_answer(items[0].answer, error=exc)
                    return
                for item in items:
                    await self._deliver(client, [item])
                return
            except Exception as exc:  # a bug, ours or the client's: each waiting job hears it
                for item in items:
                    _settle_answer(item.answer, error=exc)
                return
            self._answer(items, reports)
            return

    async def _post(self, client: LeaseClient, items: list[_Outgoing]) -> Sequence[ReportLike]:
        """One ``POST /leases/complete`` or ``/leases/fail`` for ``items`` (all of one kind)."""
        if items[0].fields is None:
            return await client.complete_many([(i.held.lease.token, i.result) for i in items])
        return await client.fail_many(
            [{"token": i.held.lease.token, **(i.fields or {})} for i in items]
        )

    def _still_worth(self, item: _Outgoing, exc: BaseException, pause: float) -> bool:
        """Whether to try ``item`` again after ``pause`` seconds; if not, it is given up."""
        held = item.held
        if held.stop_reason != LOST and asyncio.get_running_loop().time() + pause < held.expires:
            return not item.answer.done()
        self._log_job("report_given_up", held, error=_describe(exc))
        _settle_answer(item.answer)
        return False

    def _answer(self, items: list[_Outgoing], reports: Sequence[ReportLike]) -> None:
        """Hand each item its item of the batch answer (by token; in order without one)."""
        by_token = {report.token: report for report in reports if report.token is not None}
        for item, in_order in zip(items, reports, strict=False):
            report = by_token.get(item.held.lease.token, in_order)
            if report.status == LEASE_LOST:
                self._log_job("lease_lost", item.held, detail="the report changed nothing")
                _settle_answer(item.answer)
            else:
                _settle_answer(item.answer, report)

    def _log_report(
        self, held: _Held, report: ReportLike, fields: dict[str, Any] | None = None
    ) -> None:
        """``job_reported job_id=… queue=… task=… attempt=… status=… repeated=…
        duration_ms=…`` (``error_type=…`` for a failure), at INFO: the hot path's one line."""
        if not log.isEnabledFor(logging.INFO):
            return
        context = held.context
        duration_ms = (asyncio.get_running_loop().time() - held.started) * 1000
        log.info(
            "job_reported job_id=%d queue=%s task=%s attempt=%d status=%s repeated=%s "
            "duration_ms=%.1f%s",
            context.job_id,
            context.queue,
            context.task,
            context.attempt,
            report.status,
            report.repeated,
            duration_ms,
            "" if fields is None else f" error_type={fields['error_type']}",
        )

    def _log_job(
        self, event: str, held: _Held, level: int = logging.WARNING, **values: Any
    ) -> None:
        """One line ``event job_id=… queue=… task=… attempt=… key=value…``."""
        if not log.isEnabledFor(level):
            return
        context = held.context
        pairs = {
            "job_id": context.job_id,
            "queue": context.queue,
            "task": context.task,
            "attempt": context.attempt,
            **values,
        }
        text = " ".join(f"{k}={v}" for k, v in pairs.items())
        log.log(level, "%s %s", event, text)

    # --- heartbeats ----------------------------------------------------------------------

    async def _heartbeat_loop(self, client: LeaseClient) -> None:
        """Every ``heartbeat_seconds`` (the smallest of the held leases'), one heartbeat for
        every lease held; after a failure, sooner (backoff from
        :attr:`backoff_min_seconds`)."""
        delay = self.backoff_min_seconds
        retry_in: float | None = None
        while True:
            await self._has_held.wait()
            interval = min(h.lease.heartbeat_seconds for h in self._held.values())
            await asyncio.sleep(interval if retry_in is None else min(interval, retry_in))
            if not self._held:
                continue
            if await self._heartbeat(client):
                retry_in, delay = None, self.backoff_min_seconds
            else:
                retry_in, delay = _jittered(delay), min(delay * 2, self.backoff_max_seconds)
            self._stop_overdue()

    def _stop_overdue(self) -> None:
        """Tell attempts still running :attr:`stop_grace_seconds` past their timeout to stop
        (an ``async def`` task that ignored its deadline's cancellation; a plain function that
        waited that long for a thread): they are abandoned after as long again, and their jobs
        fail with a ``TimeoutError``. Checked at each heartbeat, as the in-process runner
        does."""
        now = asyncio.get_running_loop().time()
        for held in list(self._held.values()):
            overdue = now > held.started + held.context.timeout_seconds + self.stop_grace_seconds
            if overdue and held.stop_reason is None and not held.reporting:
                self._stop_attempt(held, TIMEOUT)

    async def _heartbeat(self, client: LeaseClient) -> bool:
        """One batched heartbeat, acted on; False when it failed (leases past their end by
        this process's clock are then treated as lost)."""
        loop = asyncio.get_running_loop()
        held = {t: h for t, h in self._held.items() if h.stop_reason != LOST}
        if not held:  # the service refuses an empty batch
            return True
        sent = loop.time()
        try:
            answer = await client.heartbeat(list(held))
        except Exception as exc:  # the loop's boundary: nothing may end it
            _log_failure("heartbeat_failed", exc, leases=len(held))
            for h in held.values():
                if loop.time() > h.expires:
                    self._log_job("lease_expired", h, detail="no heartbeat reached the service")
                    self._stop_attempt(h, LOST)
            return False
        for item in answer.leases:
            one = held.get(item.token)
            if one is None:
                continue
            if item.status == LOST:
                if not one.reporting:
                    self._log_job("lease_lost", one, detail="heartbeat: stopping the attempt")
                self._stop_attempt(one, LOST)
                continue
            if item.status == "extended":
                one.expires = sent + one.lease.lease_seconds
            if item.cancel_requested and one.stop_reason is None and not one.reporting:
                self._log_job("cancel_requested", one, logging.INFO)
                self._stop_attempt(one, CANCEL_REQUESTED)
        if answer.drain:
            self._pause_leasing()
        return True

    # --- shutdown ------------------------------------------------------------------------

    async def _shutdown(
        self,
        client: LeaseClient,
        loops: tuple[asyncio.Task[None], asyncio.Task[None], asyncio.Task[None]],
        grace_seconds: float,
    ) -> None:
        """Stop leasing; give running jobs ``grace_seconds`` to finish and report (heartbeats
        and reports go on); stop the rest and release them in one call."""
        leasing, beating, reporting = loops
        log.info("worker_stopping held=%d grace_seconds=%g", len(self._held), grace_seconds)
        leasing.cancel()
        await asyncio.wait({leasing})
        await self._grace(grace_seconds)
        for held in list(self._held.values()):
            self._stop_attempt(held, SHUTDOWN)
        # Attempts end at once when cancelled; one that ignores it, and a report still being
        # retried, get stop_grace_seconds, then they are cancelled (a job whose attempt did not
        # end is released too; one whose report did not get through is rescued).
        handlers = self._handlers()
        if handlers:
            await asyncio.wait(handlers, timeout=self.stop_grace_seconds)
        handlers = self._handlers()
        for handler in handlers:
            handler.cancel()
        if handlers:
            await asyncio.wait(handlers)
        beating.cancel()
        reporting.cancel()
        await self._release(client)

    async def _grace(self, grace_seconds: float) -> None:
        """Wait until every held job has ended and reported, ``grace_seconds`` at most, or
        until a second :meth:`stop`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        pending: set[asyncio.Future[Any]] = set(self._handlers())
        if not pending:
            return
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            while pending and not hurry.done() and loop.time() < deadline:
                _, pending = await asyncio.wait(
                    {*pending, hurry},
                    timeout=deadline - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                pending.discard(hurry)
        finally:
            hurry.cancel()

    def _handlers(self) -> set[asyncio.Task[None]]:
        return {h.handler for h in self._held.values() if h.handler is not None}

    async def _release(self, client: LeaseClient) -> None:
        """Release the jobs stopped by the shutdown in one call (their attempt not counted),
        retried with backoff while the service is down, for up to :attr:`stop_grace_seconds`:
        after that, their leases expire and they are rescued."""
        tokens, self._to_release = self._to_release, []
        if not tokens:
            return
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.stop_grace_seconds
        delay = self.backoff_min_seconds
        while True:
            try:
                reports = await client.release_many(tokens)
            except _SERVICE_DOWN as exc:
                pause = _jittered(delay)
                if loop.time() + pause >= give_up_at:
                    log.warning(
                        "release_given_up leases=%d error=%s detail=%s",
                        len(tokens),
                        _describe(exc),
                        "the jobs are rescued when their leases expire",
                    )
                    return
                _log_failure("release_failed", exc, retry_in=pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.backoff_max_seconds)
            except Exception as exc:  # the end of the shutdown: log, never raise
                _log_failure("release_failed", exc)
                return
            else:
                released = sum(1 for r in reports if r.status == "todo")
                log.info("jobs_released leases=%d released=%d", len(tokens), released)
                return


def _batches(items: list[_Outgoing]) -> list[list[_Outgoing]]:
    """``items`` in batches of at most :data:`MAX_BATCH_ITEMS` and, but for a batch of one,
    :data:`MAX_BATCH_CHARACTERS`."""
    batches: list[list[_Outgoing]] = []
    batch: list[_Outgoing] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= MAX_BATCH_ITEMS or size + item.size > MAX_BATCH_CHARACTERS):
            batches.append(batch)
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        batches.append(batch)
    return batches


def _settle_answer(
    answer: asyncio.Future[ReportLike | None],
    report: ReportLike | None = None,
    *,
    error: BaseException | None = None,
) -> None:
    if answer.done():
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(report)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _default_name(host: str) -> str:
    """``<hostname>-<pid>``, with what a worker name may not hold replaced by ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:@\-]", "-", host)[:80] or "worker"
    return f"{cleaned}-{os.getpid()}"


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text[:300]


def _log_failure(event: str, exc: BaseException, **values: Any) -> None:
    """A warning for the service being down; an error with the traceback for anything else."""
    pairs = {**values, "error": _describe(exc)}
    if "retry_in" in pairs:
        pairs["retry_in"] = f"{pairs['retry_in']:.2f}"
    text = " ".join(f"{k}={v}" for k, v in pairs.items())
    if isinstance(exc, _SERVICE_DOWN):
        log.warning("%s %s", event, text)
    elif isinstance(exc, JobQueueClientError):
        log.error("%s %s", event, text)
    else:  # a bug, ours or the client's
        log.error("%s %s", event, text, exc_info=exc)


def import_task_modules(modules: Iterable[str]) -> None:
    """Import the modules whose :func:`remote_task` functions fill :data:`default_tasks`; the
    current directory is searched first (as ``python -m`` does).

    Raises:
        ImportError: a module cannot be imported (the message names it).
    """
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"cannot import task module {module!r}: {exc}") from exc
