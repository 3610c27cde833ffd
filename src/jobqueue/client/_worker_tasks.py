"""Task registration and what a task raises and sees: :func:`remote_task`, :class:`RemoteTasks`,
:class:`TaskContext`, :class:`Discard`, :class:`RetryLater`, :func:`import_task_modules`."""

from __future__ import annotations

import importlib
import inspect
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
