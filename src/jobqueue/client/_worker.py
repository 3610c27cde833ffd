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
import math
import os
import re
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence

import httpx

from jobqueue.client._async import AsyncJobQueue
from jobqueue.client._worker_attempts import Attempts
from jobqueue.client._worker_heartbeats import Heartbeats
from jobqueue.client._worker_leasing import Leasing
from jobqueue.client._worker_protocols import (
    HeartbeatAnswerLike,
    HeartbeatItemLike,
    LeaseBatchLike,
    LeaseClient,
    LeasedJobLike,
    LeaseLike,
    ReportLike,
)
from jobqueue.client._worker_reports import Reporter
from jobqueue.client._worker_shutdown import Shutdown
from jobqueue.client._worker_state import (
    MAX_BATCH_CHARACTERS,
    MAX_BATCH_ITEMS,
    STOP_GRACE_SECONDS,
    WorkerState,
    jittered,
    log,
)
from jobqueue.client._worker_tasks import (
    MAX_ERROR_CHARS,
    MAX_RETRY_DELAY_SECONDS,
    MAX_TASKS,
    TASK_NAME,
    WORKER_NAME,
    Discard,
    F,
    RemoteTask,
    RemoteTasks,
    RetryLater,
    TaskContext,
    UnknownTask,
    default_tasks,
    import_task_modules,
    remote_task,
)
from jobqueue.client._worker_threads import Threads

__all__ = [
    "MAX_BATCH_CHARACTERS",
    "MAX_BATCH_ITEMS",
    "MAX_ERROR_CHARS",
    "MAX_RETRY_DELAY_SECONDS",
    "MAX_TASKS",
    "STOP_GRACE_SECONDS",
    "TASK_NAME",
    "WORKER_NAME",
    "Discard",
    "HeartbeatAnswerLike",
    "HeartbeatItemLike",
    "LeaseBatchLike",
    "LeaseClient",
    "LeaseLike",
    "LeasedJobLike",
    "RemoteTask",
    "RemoteTasks",
    "ReportLike",
    "RetryLater",
    "TaskContext",
    "UnknownTask",
    "Worker",
    "default_tasks",
    "import_task_modules",
    "remote_task",
]


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_calls = 0
        # Made again by each run (an event belongs to the loop that first waits on it).
        self._stopping = asyncio.Event()
        # The parts, by responsibility; they share the leases held (``_state``).
        self._state = WorkerState(self)
        self._reporter = Reporter(self)
        self._attempts = Attempts(self._state, self.tasks, self._reporter)
        self._leasing = Leasing(self._state, self._attempts, self._reporter)
        self._heartbeats = Heartbeats(self._state)
        self._shutdown = Shutdown(self._state)

    def _check(self) -> None:
        problems = []
        if not 1 <= len(self.queues) <= 32:
            problems.append(f"queues must name 1 to 32 queues, got {len(self.queues)}")
        bad = [queue for queue in self.queues if not _QUEUE_NAME.fullmatch(queue)]
        if bad:
            problems.append(f"queue names are 1 to 100 of A-Za-z0-9_.:-, got {bad[0][:120]!r}")
        if not _HTTP_URL.match(self.url):
            problems.append(f"url must start with http:// or https://, got {self.url[:120]!r}")
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
        return len(self._state.held)

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
            self._state.hurry.set()
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
        self._begin(names)
        loops = self._start_loops(client, names)
        try:
            try:
                await self._stopping.wait()
            except asyncio.CancelledError:
                await self._shutdown.run(client, loops, grace_seconds=0.0)
                raise
            await self._shutdown.run(client, loops, grace_seconds=self.grace_seconds)
        finally:
            for task in loops:
                task.cancel()
            self._attempts.threads.close()
            if own_client:
                await client.aclose()
            self._loop = None
            self._stop_calls = 0
        log.info("worker_stopped name=%s", self.name)

    def _begin(self, names: list[str]) -> None:
        """Take the running loop: its events, a thread pool, the stops asked for before."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._state.new_events()
        self._reporter.new_events()
        for _ in range(self._stop_calls):
            self._request_stop()
        self._attempts.threads = Threads(self.concurrency)
        log.info(
            "worker_started name=%s url=%s queues=%s tasks=%s concurrency=%d",
            self.name,
            self.url,
            ",".join(self.queues),
            ",".join(names),
            self.concurrency,
        )

    def _start_loops(
        self, client: LeaseClient, names: list[str]
    ) -> tuple[asyncio.Task[None], asyncio.Task[None], asyncio.Task[None]]:
        """The leasing, heartbeat and reports loops, each supervised, in this order."""
        leasing = asyncio.create_task(
            self._supervised("leasing", lambda: self._leasing.run(client, names)),
            name="jobqueue-leasing",
        )
        beating = asyncio.create_task(
            self._supervised("heartbeat", lambda: self._heartbeats.run(client)),
            name="jobqueue-heartbeat",
        )
        reporting = asyncio.create_task(
            self._supervised("reports", lambda: self._reporter.run(client)),
            name="jobqueue-reports",
        )
        return leasing, beating, reporting

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop()`` until cancelled; should it raise (a bug: the loops catch what the
        service does), log it with its traceback and start it again after a backoff."""
        delay = self.backoff_min_seconds
        while True:
            try:
                await loop()
            except Exception:
                pause = jittered(delay)
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


_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_HTTP_URL = re.compile(r"https?://[^\s/?#]+", re.IGNORECASE)


def _default_name(host: str) -> str:
    """``<hostname>-<pid>-<6 random hex digits>``, with what a worker name may not hold
    replaced by ``-``. The suffix keeps two processes apart whose host name and pid agree
    (containers on the host's network, each pid 1): the lease fence tells workers apart by
    name, so names must be unique (docs/workers.md)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:@\-]", "-", host)[:80] or "worker"
    return f"{cleaned}-{os.getpid()}-{secrets.token_hex(3)}"
