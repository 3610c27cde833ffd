"""What the client returns: frozen dataclasses built from the service's JSON answers
(``api/schemas.py`` and ``api/routes/*.py`` define the shapes), and :class:`JobSpec`, what
:meth:`JobQueue.enqueue_many` takes.

Times are timezone-aware :class:`datetime.datetime` (the service answers in UTC); durations
are seconds (``float``); payloads and results stay plain JSON values (``dict``, ``list``,
``str``, numbers, ``None``). Each answer type keeps the JSON object it was built from in
``raw`` (not compared, not shown in ``repr``), so that a field a newer service adds is still
at hand and the object can be printed exactly as the service sent it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINAL_STATUSES = frozenset({"done", "failed", "cancelled"})
"""The statuses a job ends in; ``todo`` and ``in_progress`` are not final."""


def _raw() -> Any:
    return field(default_factory=dict, compare=False, repr=False)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time from an answer (``2026-11-29T12:00:00.000000Z``), or None."""
    if value is None:
        return None
    return datetime.fromisoformat(str(value))


def _required_time(value: Any) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("the answer lacks a required time")
    return parsed


@dataclass(frozen=True)
class Job:
    """A job as ``GET /jobs/{id}`` answers it.

    Attributes:
        id: the job's id.
        task: the task's name (``echo``, ``sleep``, ...).
        queue: the queue's name.
        status: ``todo``, ``in_progress``, ``done``, ``failed`` or ``cancelled``.
        payload: the JSON object handed to the task.
        result: what the task returned (any JSON value), None until ``done``.
        error: the last attempt's error (``"RuntimeError: boom"``), or None.
        attempts: attempts started so far.
        max_attempts: attempts allowed in all.
        priority: -100 to 100, higher runs first.
        description: free text, or None.
        created_at: when it was created.
        run_at: not run before this time.
        started_at: when its last attempt started, or None.
        finished_at: when it ended, or None.
        timeout_seconds: each attempt's time limit, seconds.
        worker_id: the worker holding its lease or that ran its last attempt, or None.
        lease_expires_at: when the current lease runs out, or None.
        rescues: how many times an expired lease was rescued.
        idempotency_key: the key it was created with, or None.
        cancel_requested_at: when a cancel of the running job was asked, or None.
        raw: the JSON object as the service sent it.
    """

    id: int
    task: str
    queue: str
    status: str
    payload: dict[str, Any]
    result: Any
    error: str | None
    attempts: int
    max_attempts: int
    priority: int
    description: str | None
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timeout_seconds: float
    worker_id: str | None
    lease_expires_at: datetime | None
    rescues: int
    idempotency_key: str | None
    cancel_requested_at: datetime | None
    raw: Mapping[str, Any] = _raw()

    @property
    def is_final(self) -> bool:
        """True when the job is ``done``, ``failed`` or ``cancelled``."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        """Build from a job object of the API (``JobOut``)."""
        return cls(
            id=int(data["id"]),
            task=data["task"],
            queue=data["queue"],
            status=data["status"],
            payload=data.get("payload") or {},
            result=data.get("result"),
            error=data.get("error"),
            attempts=int(data.get("attempts", 0)),
            max_attempts=int(data["max_attempts"]),
            priority=int(data.get("priority", 0)),
            description=data.get("description"),
            created_at=_required_time(data["created_at"]),
            run_at=_required_time(data["run_at"]),
            started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")),
            timeout_seconds=float(data["timeout_seconds"]),
            worker_id=data.get("worker_id"),
            lease_expires_at=parse_time(data.get("lease_expires_at")),
            rescues=int(data.get("rescues", 0)),
            idempotency_key=data.get("idempotency_key"),
            cancel_requested_at=parse_time(data.get("cancel_requested_at")),
            raw=data,
        )


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /jobs``, newest first.

    Attributes:
        items: the jobs of the page (possibly fewer than asked, see ``next_cursor``).
        next_cursor: pass it as ``cursor`` for the next page; None on the last page.
    """

    items: list[Job]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobPage:
        """Build from the answer of ``GET /jobs``."""
        return cls([Job.from_json(item) for item in data["items"]], data.get("next_cursor"))


@dataclass(frozen=True)
class JobSpec:
    """One job to create with :meth:`JobQueue.enqueue_many` (the fields of ``POST /jobs``).

    A field left None takes the service's default (queue ``default``, priority 0, the
    configured attempts and timeout, run at once).

    Attributes:
        task: the task's name.
        payload: a JSON object for the task; None is ``{}``.
        queue: the queue's name.
        priority: -100 to 100, higher runs first.
        delay_seconds: first run after this many seconds (not with ``run_at``).
        run_at: first run not before this time: an aware datetime or RFC 3339 text.
        max_attempts: attempts in all, 1 to 1000.
        timeout_seconds: each attempt's limit, seconds (above 0, at most 86,400).
        idempotency_key: the same key with the same request gives the same job.
        description: free text for people.
    """

    task: str
    payload: Mapping[str, Any] | None = None
    queue: str | None = None
    priority: int | None = None
    delay_seconds: float | None = None
    run_at: datetime | str | None = None
    max_attempts: int | None = None
    timeout_seconds: float | None = None
    idempotency_key: str | None = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The body of ``POST /jobs`` (or a spec of ``POST /jobs/batch``): the fields that
        are set."""
        body: dict[str, Any] = {"task": self.task}
        if self.payload is not None:
            body["payload"] = dict(self.payload)
        optional = {
            "queue": self.queue,
            "priority": self.priority,
            "delay_seconds": self.delay_seconds,
            "run_at": self.run_at.isoformat() if isinstance(self.run_at, datetime) else self.run_at,
            "max_attempts": self.max_attempts,
            "timeout_seconds": self.timeout_seconds,
            "idempotency_key": self.idempotency_key,
            "description": self.description,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        return body


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job (``GET /jobs/{id}/attempts``).

    Attributes:
        attempt: its number, from 1.
        worker_id: the worker that ran it, or None.
        started_at: when it started, or None.
        finished_at: when it ended, or None while it runs.
        outcome: ``running``, ``done``, ``retried``, ``failed``, ``cancelled`` or ``rescued``.
        error_type: the exception's type (``ValueError``), or None.
        error_message: its message, or None.
        traceback: its trimmed traceback, or None.
        raw: the JSON object as the service sent it.
    """

    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error_type: str | None
    error_message: str | None
    traceback: str | None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        """Build from an attempt object of the API (``AttemptOut``)."""
        return cls(
            attempt=int(data["attempt"]),
            worker_id=data.get("worker_id"),
            started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")),
            outcome=data["outcome"],
            error_type=data.get("error_type"),
            error_message=data.get("error_message"),
            traceback=data.get("traceback"),
            raw=data,
        )


@dataclass(frozen=True)
class Queue:
    """A queue (``GET /queues``).

    Attributes:
        name: the queue's name.
        counts: jobs per status (every status, 0 when none).
        paused: True while no process claims its jobs.
        paused_at: since when it is paused, or None.
        paused_by: the API key name that paused it, or None.
        slots_online: runner slots of live processes serving it.
        oldest_due_seconds: how long its oldest due job has waited, seconds; None: none due.
        counts_estimated: True when the finished counts are the planner's estimates.
        raw: the JSON object as the service sent it.
    """

    name: str
    counts: dict[str, int]
    paused: bool
    paused_at: datetime | None
    paused_by: str | None
    slots_online: int
    oldest_due_seconds: float | None
    counts_estimated: bool
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Queue:
        """Build from a queue object of the API (``QueueOut``)."""
        oldest = data.get("oldest_due_seconds")
        return cls(
            name=data["name"],
            counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
            paused=bool(data.get("paused", False)),
            paused_at=parse_time(data.get("paused_at")),
            paused_by=data.get("paused_by"),
            slots_online=int(data.get("slots_online", 0)),
            oldest_due_seconds=None if oldest is None else float(oldest),
            counts_estimated=bool(data.get("counts_estimated", False)),
            raw=data,
        )


@dataclass(frozen=True)
class QueueState:
    """A queue's pause state after :meth:`JobQueue.pause` or :meth:`JobQueue.resume`.

    Attributes:
        name: the queue's name.
        paused: whether it is paused now.
        paused_at: since when, or None.
        paused_by: the API key name that paused it, or None.
        raw: the JSON object as the service sent it.
    """

    name: str
    paused: bool
    paused_at: datetime | None
    paused_by: str | None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueState:
        """Build from the answer of a pause or resume."""
        return cls(
            name=data["name"],
            paused=bool(data["paused"]),
            paused_at=parse_time(data.get("paused_at")),
            paused_by=data.get("paused_by"),
            raw=data,
        )


@dataclass(frozen=True)
class ProcessInfo:
    """A live jobqueue process (``GET /workers``).

    Attributes:
        worker_id: its id (``host:pid:random``, or a remote worker's name).
        host: its host name.
        pid: its process id.
        role: ``serve``, ``worker`` or ``api`` (or a remote worker's role).
        version: its jobqueue version.
        queues: runner slots per queue it serves.
        tasks: the tasks it runs.
        busy: slots running a job at its last renewal.
        started_at: when it started.
        seen_at: when it last renewed its row.
        raw: the JSON object as the service sent it.
    """

    worker_id: str
    host: str
    pid: int
    role: str
    version: str
    queues: dict[str, int]
    tasks: list[str]
    busy: int
    started_at: datetime
    seen_at: datetime
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessInfo:
        """Build from a process object of the API (``ProcessOut``)."""
        return cls(
            worker_id=data["worker_id"],
            host=data.get("host", ""),
            pid=int(data.get("pid", 0)),
            role=data.get("role", ""),
            version=data.get("version", ""),
            queues={str(k): int(v) for k, v in data.get("queues", {}).items()},
            tasks=list(data.get("tasks", [])),
            busy=int(data.get("busy", 0)),
            started_at=_required_time(data["started_at"]),
            seen_at=_required_time(data["seen_at"]),
            raw=data,
        )


@dataclass(frozen=True)
class ProcessList:
    """The live processes (``GET /workers``), oldest first.

    Attributes:
        items: the processes.
        slots: runner slots over all of them.
        busy: busy slots over all of them.
    """

    items: list[ProcessInfo]
    slots: int
    busy: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessList:
        """Build from the answer of ``GET /workers``."""
        return cls(
            items=[ProcessInfo.from_json(item) for item in data["items"]],
            slots=int(data.get("slots", 0)),
            busy=int(data.get("busy", 0)),
        )


@dataclass(frozen=True)
class Schedule:
    """A periodic job (``/schedules``, docs/schedules.md).

    Attributes:
        name: the schedule's name.
        cron: five cron fields or ``@daily`` and the like.
        timezone: the IANA time zone of the cron fields.
        task: the task of each job it creates.
        payload: each job's payload.
        queue: each job's queue.
        priority: each job's priority.
        paused: True while no slot fires.
        source: ``api``, or ``settings`` (``JOBQUEUE_SCHEDULES``).
        next_run_at: its next slot.
        last_run_at: the slot of the last job it created, or None.
        last_job_id: that job's id, or None.
        created_at: when it was defined.
        updated_at: when it last changed.
        raw: the JSON object as the service sent it.
    """

    name: str
    cron: str
    timezone: str
    task: str
    payload: Any
    queue: str
    priority: int
    paused: bool
    source: str
    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: int | None
    created_at: datetime
    updated_at: datetime
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Schedule:
        """Build from a schedule object of the API (``ScheduleOut``)."""
        last_job_id = data.get("last_job_id")
        return cls(
            name=data["name"],
            cron=data["cron"],
            timezone=data["timezone"],
            task=data["task"],
            payload=data.get("payload"),
            queue=data["queue"],
            priority=int(data.get("priority", 0)),
            paused=bool(data.get("paused", False)),
            source=data.get("source", "api"),
            next_run_at=_required_time(data["next_run_at"]),
            last_run_at=parse_time(data.get("last_run_at")),
            last_job_id=None if last_job_id is None else int(last_job_id),
            created_at=_required_time(data["created_at"]),
            updated_at=_required_time(data["updated_at"]),
            raw=data,
        )
