"""The thread pool that runs a remote worker's plain (not ``async def``) task functions."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ThreadTimeout(TimeoutError):
    """A plain function ran past its timeout, counted from its start in a thread."""


@dataclass(eq=False)
class _Work:
    function: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    started: asyncio.Event
    done: asyncio.Future[Any]
    skip: bool = False  # given up before a thread took it


class Threads:
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
            ThreadTimeout: it ran longer than ``timeout_seconds`` from its start; it is
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
            raise ThreadTimeout(f"ran past {timeout_seconds:g} s") from exc
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
