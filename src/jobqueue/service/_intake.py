"""Intake: a client's job request checked and turned into a :class:`NewJob` (no I/O)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobqueue.encoding import check_depth, encode_json, utf8_size
from jobqueue.errors import (
    InvalidJobRequest,
    PayloadTooLarge,
    TaskError,
    UnknownQueue,
    UnknownTask,
)
from jobqueue.jobs import Job, NewJob
from jobqueue.service._catalog import LiveNames
from jobqueue.tasks.registry import TaskRegistry

NOBODY = LiveNames()
"""No live process announced anything (the default of :func:`prepare`)."""

EARLIEST_RUN_AT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_RUN_AT = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """Per-job defaults and limits (from settings).

    Attributes:
        max_attempts: attempts a job gets when the request does not say.
        timeout_seconds: per-attempt timeout, in seconds, when the request does not say.
        max_payload_bytes: the largest payload, as compact UTF-8 JSON, in bytes.
        max_payload_depth: the most levels of objects and arrays a payload may nest (the
            payload object itself is level 1).
        known_queues: the queues a job may name; any other is refused, so that a client
            cannot create queues (each one a row in the dashboard and a label value in the
            metrics). The composition root passes ``JOBQUEUE_QUEUES`` with
            ``JOBQUEUE_REMOTE_QUEUES``; when remote workers announce their queues, add theirs.
        remote_tasks: tasks other processes run (``JOBQUEUE_REMOTE_TASKS``): a job may name
            them although this process's registry lacks them (no enqueue-time payload check).
        remote_queues: queues other processes or remote workers serve
            (``JOBQUEUE_REMOTE_QUEUES``): a job there may name any task (the workers of the
            queue define them; docs/workers.md).
    """

    max_attempts: int = 3
    timeout_seconds: float = 300.0
    max_payload_bytes: int = 1_048_576
    max_payload_depth: int = 64
    known_queues: frozenset[str] = frozenset({"default"})
    remote_tasks: frozenset[str] = frozenset()
    remote_queues: frozenset[str] = frozenset()


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


def prepare(
    request: JobRequest, registry: TaskRegistry, defaults: JobDefaults, live: LiveNames = NOBODY
) -> NewJob:
    """Check a request and apply defaults, without touching the database.

    Args:
        live: the tasks and queues live processes announced (the process registry): a job may
            name them too.

    Raises:
        UnknownTask: the task is neither registered, nor remote, nor announced by a live
            process, and the queue is not one where any task goes (``remote_queues``, or a
            live remote worker's queue that it leases from without naming tasks); the message
            lists the known ones.
        UnknownQueue: the queue is neither in ``defaults.known_queues`` nor served by a live
            process (the message lists them).
        PayloadTooLarge: the payload's JSON is over ``max_payload_bytes``.
        InvalidJobRequest: U+0000 or a lone surrogate in a string, NaN/Infinity, both
            ``run_at`` and ``delay_seconds``, a naive or out-of-range ``run_at``, a non-finite
            number, a payload nesting deeper than ``max_payload_depth``, or a payload the
            task's validator refuses.
    """
    task = request.task
    if (
        task not in registry
        and task not in defaults.remote_tasks
        and task not in live.tasks
        and request.queue not in defaults.remote_queues
        and request.queue not in live.open_queues
    ):
        raise UnknownTask(task, {*registry.names(), *defaults.remote_tasks, *live.tasks})
    _check_texts(request)
    if request.queue not in defaults.known_queues and request.queue not in live.queues:
        raise UnknownQueue(request.queue, defaults.known_queues | live.queues)
    payload = {} if request.payload is None else request.payload
    payload_json = encode_json(payload, "payload")
    size = utf8_size(payload_json, "payload")
    if size > defaults.max_payload_bytes:
        raise PayloadTooLarge(size, defaults.max_payload_bytes)
    check_depth(payload, payload_json, defaults.max_payload_depth, "payload")
    if request.run_at is not None and request.delay_seconds is not None:
        raise InvalidJobRequest("give run_at or delay_seconds, not both")
    if request.run_at is not None:
        check_run_at(request.run_at)
    _validate_payload(request, registry)
    timeout = request.timeout_seconds or defaults.timeout_seconds
    delay = request.delay_seconds or 0.0
    if not math.isfinite(timeout) or not math.isfinite(delay) or delay < 0:
        raise InvalidJobRequest("timeout_seconds and delay_seconds must be finite and >= 0")
    return NewJob(
        task=request.task,
        payload_json=payload_json,
        queue=request.queue,
        priority=request.priority,
        description=request.description,
        max_attempts=request.max_attempts or defaults.max_attempts,
        timeout_seconds=timeout,
        delay_seconds=delay,
        run_at=request.run_at,
        idempotency_key=request.idempotency_key,
    )


def prepare_at(
    request: JobRequest,
    registry: TaskRegistry,
    defaults: JobDefaults,
    index: int,
    count: int,
    live: LiveNames = NOBODY,
) -> NewJob:
    """:func:`prepare` for item ``index`` of ``count``: the message of an error names the item
    (``jobs[3]: …``) when there are several."""
    try:
        return prepare(request, registry, defaults, live)
    except InvalidJobRequest as exc:
        if count > 1:
            exc.args = (f"jobs[{index}]: {exc}",)
        raise


def _check_texts(request: JobRequest) -> None:
    texts = (
        ("queue", request.queue),
        ("description", request.description),
        ("idempotency_key", request.idempotency_key),
    )
    for name, value in texts:
        if value is not None:
            if "\x00" in value:
                raise InvalidJobRequest(f"{name} contains U+0000, which PostgreSQL cannot store")
            utf8_size(value, name)


def _validate_payload(request: JobRequest, registry: TaskRegistry) -> None:
    entry = registry.get(request.task)
    if entry is not None and entry.validate is not None:
        try:
            entry.validate(request.payload or {})
        except (ValueError, TaskError) as exc:
            raise InvalidJobRequest(f"payload for task {request.task!r}: {exc}") from exc


def check_run_at(run_at: datetime) -> None:
    """Refuse a naive ``run_at`` or one outside 1970-01-01 .. 9999-01-01 UTC (a time in the
    past just means "now"; the range keeps every value storable and printable).

    Raises:
        InvalidJobRequest: saying which rule was broken.
    """
    if run_at.utcoffset() is None:
        raise InvalidJobRequest("run_at needs a UTC offset, e.g. 2026-11-29T12:00:00Z")
    try:
        in_range = EARLIEST_RUN_AT <= run_at.astimezone(UTC) < LATEST_RUN_AT
    except OverflowError:
        in_range = False
    if not in_range:
        raise InvalidJobRequest("run_at must lie between 1970-01-01 and 9999-01-01 UTC")


def difference(new: NewJob, job: Job) -> str | None:
    """Which of task, queue, payload differ between a request and the job its key names."""
    if new.task != job.task:
        return "task"
    if new.queue != job.queue:
        return "queue"
    if json.loads(new.payload_json) != job.payload:
        return "payload"
    return None


def due_in_seconds(new: NewJob, now: datetime) -> float:
    """Seconds from ``now`` until ``new`` is due (0 when due at once), by this process's clock
    (used only to time a wake-up of the local claimer; the database clock decides)."""
    if new.run_at is not None:
        return max((new.run_at - now).total_seconds(), 0.0)
    return new.delay_seconds
