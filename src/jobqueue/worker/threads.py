"""The thread pool of plain (``def``) tasks: their own threads, sized from the slots.

Rules (docs/jobs.md, "Sync tasks"):

- A plain task runs in a thread of this pool, never on the event loop and never in Python's
  default executor (which is shared and sized from the CPU count, about 6 threads here,
  whatever the concurrency). ``size`` threads can run at once: one per slot.
- Its timeout counts from the moment a thread starts it, not from the moment it was queued: a
  job never times out because it waited for a thread.
- Python cannot stop a thread. An attempt that times out or is cancelled is *abandoned*: the
  job moves on (its late result is ignored) while the function keeps its thread until it
  returns. The pool grows by one thread per abandoned function, so abandoned functions never
  take the threads of later jobs (which would then time out falsely); a thread beyond ``size``
  exits when its abandoned function returns.
- The threads are daemon threads: shutdown never waits for an abandoned function (Python's
  ``ThreadPoolExecutor`` joins its threads at interpreter exit, so a hung function would hold
  the process past its grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ThreadTimeout(TimeoutError):
    """The function ran past its timeout (counted from its start in a thread)."""


@dataclass(eq=False)
class _Work:
    function: Callable[[Any], Any]
    argument: Any
    loop: asyncio.AbstractEventLoop
    started: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Future[Any] | None = None
    abandoned: bool = False
    running: bool = False
    finished: bool = False


class SyncThreads:
    """Runs plain functions for the runners (see the module docstring for the rules).

    Args:
        size: threads that may run functions at once (the process's slots).
        name: prefix of the threads' names.
    """

    def __init__(self, size: int, name: str = "jobqueue-sync") -> None:
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._waiting = 0
        self._abandoned = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """Threads alive now."""
        return self._threads

    @property
    def abandoned(self) -> int:
        """Functions still running whose attempt gave up on them."""
        return self._abandoned

    async def run(
        self, function: Callable[[Any], Any], argument: Any, timeout_seconds: float
    ) -> Any:
        """``function(argument)`` in a thread; its result, or its exception re-raised.

        Raises:
            ThreadTimeout: it ran longer than ``timeout_seconds`` from its start; it is
                abandoned (keeps running, its result ignored).
            asyncio.CancelledError: the caller was cancelled; the function is abandoned.
            RuntimeError: the pool is closed.
        """
        loop = asyncio.get_running_loop()
        work = _Work(function, argument, loop, done=loop.create_future())
        self._submit(work)
        try:
            await work.started.wait()
            async with asyncio.timeout(timeout_seconds):
                assert work.done is not None
                return await asyncio.shield(work.done)
        except TimeoutError as exc:
            self._abandon(work)
            raise ThreadTimeout(f"ran past {timeout_seconds:g} s") from exc
        except asyncio.CancelledError:
            self._abandon(work)
            raise

    def _submit(self, work: _Work) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the sync task threads are closed")
            self._waiting += 1
            spawn = self._waiting > self._idle and self._threads < self.size + self._abandoned
            if spawn:
                self._threads += 1
        self._queue.put(work)
        if spawn:
            number = self._threads
            threading.Thread(target=self._work, name=f"{self.name}-{number}", daemon=True).start()

    def _abandon(self, work: _Work) -> None:
        with self._lock:
            if work.running and not work.finished and not work.abandoned:
                self._abandoned += 1
            work.abandoned = True  # not started yet: the thread skips it

    def _work(self) -> None:
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
                if work.abandoned:
                    continue
                work.running = True
            work.loop.call_soon_threadsafe(work.started.set)
            outcome: tuple[bool, Any]
            try:
                outcome = (True, work.function(work.argument))
            except BaseException as exc:  # the task's failure, handed to its attempt
                outcome = (False, exc)
            with self._lock:
                work.finished = True
                was_abandoned = work.abandoned
                if was_abandoned:
                    self._abandoned -= 1
                surplus = self._threads > self.size + self._abandoned
                if surplus:
                    self._threads -= 1
            if not was_abandoned:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    work.loop.call_soon_threadsafe(_settle, work.done, outcome)
            if surplus:
                return

    def close(self) -> None:
        """Stop the idle threads; busy ones exit when their function returns (daemon threads:
        the process does not wait for them)."""
        with self._lock:
            self._closed = True
            count = self._threads
        for _ in range(count):
            self._queue.put(None)


def _settle(future: asyncio.Future[Any] | None, outcome: tuple[bool, Any]) -> None:
    if future is None or future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
