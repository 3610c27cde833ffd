"""The task registry: names to functions, filled by the ``@task`` decorator.

A task is a function ``f(ctx: JobContext) -> JSON-serialisable result``, ``async def`` or plain
``def``. Plain functions run on the worker pool's own threads (``worker/threads.py``) so they
never block the event loop; they cannot be interrupted by a timeout or a cancel (Python threads
cannot be killed), so their late result is ignored (docs/jobs.md, "Sync tasks").

Example::

    from jobqueue import task

    @task("resize")
    async def resize(ctx):
        return {"width": ctx.payload["width"] // 2}

Modules named in ``JOBQUEUE_TASK_MODULES`` are imported at start so their decorators run.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jobqueue.errors import ConfigurationError
from jobqueue.jobs import TASK_NAME_PATTERN

_TASK_NAME = re.compile(TASK_NAME_PATTERN)

TaskFunction = Callable[["JobContext"], Any]
PayloadValidator = Callable[[dict[str, Any]], None]
"""Checks a payload at enqueue time; raises ValueError (or a TaskError) saying what to fix."""


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a running task sees of its job.

    Attributes:
        job_id: the job's id.
        task: the task name.
        queue: the queue the job was claimed from.
        payload: the job's payload, a JSON object.
        attempt: this attempt's number, 1 for the first run.
        max_attempts: how many attempts the job may use in all.
    """

    job_id: int
    task: str
    queue: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int


@dataclass(frozen=True, slots=True)
class Task:
    """A registered task: its name, its function, whether that function is a coroutine, and an
    optional payload validator run at enqueue time (a bad payload is a 422, not a failed job)."""

    name: str
    function: TaskFunction
    is_async: bool
    validate: PayloadValidator | None = None


@dataclass
class TaskRegistry:
    """Task names to :class:`Task`. ``create_app`` builds one from the default registry."""

    tasks: dict[str, Task] = field(default_factory=dict)

    def register(
        self, name: str, function: TaskFunction, validate: PayloadValidator | None = None
    ) -> Task:
        """Add ``function`` under ``name``, with an optional enqueue-time payload validator.

        Raises:
            ConfigurationError: when ``name`` is taken by another function, or is not a name
                the API accepts (1 to 200 of ``A-Za-z0-9_.:-``, ``jobs.TASK_NAME_PATTERN``): no
                client could ever create a job for it.
        """
        if not isinstance(name, str) or not _TASK_NAME.fullmatch(name):
            raise ConfigurationError(
                f"task name {str(name)[:200]!r} is not 1 to 200 of A-Za-z0-9_.:- (what the API "
                "accepts as a job's task): rename it"
            )
        existing = self.tasks.get(name)
        if existing is not None and existing.function is not function:
            raise ConfigurationError(f"task name {name!r} is registered twice")
        entry = Task(name, function, inspect.iscoroutinefunction(function), validate)
        self.tasks[name] = entry
        return entry

    def task(
        self, name: str, validate: PayloadValidator | None = None
    ) -> Callable[[TaskFunction], TaskFunction]:
        """Decorator form of :meth:`register`; returns the function unchanged."""

        def decorate(function: TaskFunction) -> TaskFunction:
            self.register(name, function, validate)
            return function

        return decorate

    def get(self, name: str) -> Task | None:
        """The task called ``name``, or None."""
        return self.tasks.get(name)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self.tasks)

    def __contains__(self, name: object) -> bool:
        return name in self.tasks

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def copy(self) -> TaskRegistry:
        """A shallow copy: tests add tasks to it without touching the default registry."""
        return TaskRegistry(dict(self.tasks))


default_registry = TaskRegistry()


def task(
    name: str, validate: PayloadValidator | None = None
) -> Callable[[TaskFunction], TaskFunction]:
    """Register a function as task ``name`` in the default registry.

    Args:
        name: the name clients pass as ``task`` when they create a job.
        validate: optional ``validate(payload)`` run when a job is created; raise
            ``ValueError("what to fix")`` to refuse it with a 422.

    Raises:
        ConfigurationError: when another function already has that name, or the name is not 1 to
            200 of ``A-Za-z0-9_.:-`` (what the API accepts).
    """
    return default_registry.task(name, validate)


def import_task_modules(modules: list[str]) -> None:
    """Import the user modules that hold ``@task`` functions (``JOBQUEUE_TASK_MODULES``).

    The current directory is searched first, as ``python -m`` and Celery's worker do, so that
    ``JOBQUEUE_TASK_MODULES=myapp.tasks jobqueue serve`` finds ``./myapp/tasks.py`` (a console
    script like ``jobqueue`` does not put it on ``sys.path`` by itself).

    Raises:
        ConfigurationError: when a module cannot be imported; the message names it.
    """
    here = os.getcwd()
    if modules and here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"cannot import task module {module!r} (JOBQUEUE_TASK_MODULES): {exc}"
            ) from exc
