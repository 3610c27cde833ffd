"""The job domain: statuses, attempt outcomes and the records that move between layers
(standard library only).

The state machine (see DESIGN.md)::

    todo ──claim──► in_progress ──ok──────────────────► done
      ▲                 │ error, attempts left ───────► todo   (run_at = now + backoff)
      │                 │ error, none left / discard ─► failed
      │                 │ lease expired (rescue) ─────► todo   (counts as an attempt)
      │                 │ cancel requested ───────────► cancelled
      └── retry (API) ◄─ failed, cancelled              todo ──cancel──► cancelled

Every write that moves a job (``leases/`` for the lease transitions, ``db/queries.py`` for enqueue,
cancel and retry) is guarded by the source state in its ``WHERE`` clause, so these rules hold in
the database, not only in this picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

TASK_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
"""What a task name may be: 1 to 200 ASCII letters, digits and ``_.:-`` (the API's ``task``
field, ``@task`` names, ``JOBQUEUE_REMOTE_TASKS``): safe in a URL, a metric label and a log."""

QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"

SCHEDULE_KEY_PREFIX = "schedule:"
"""Idempotency keys that start with this are the scheduler's (``schedule:<name>:<slot>``, one
job per slot): a client may not send one, or it could take a slot's key and so cancel or
postpone the slot's job."""
"""What a queue name may be: 1 to 100 ASCII letters, digits and ``_.:-``."""


class JobStatus(StrEnum):
    """Where a job is in its life. Stored as text in ``jobs.status`` (a CHECK constraint)."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for the states a job only leaves through an explicit retry."""
        return self in FINAL_STATUSES


FINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED}
)


class AttemptOutcome(StrEnum):
    """How one attempt of a job ended, as ``GET /jobs/{id}/attempts`` lists it.

    ``job_attempts.outcome`` stores the four of :data:`RECORDED_OUTCOMES` (a CHECK constraint);
    the successful (``done``) or ``running`` attempt is described by the job row itself, so the
    hot path writes no history row for it.
    """

    RETRIED = "retried"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RESCUED = "rescued"
    DONE = "done"
    RUNNING = "running"


RECORDED_OUTCOMES: tuple[AttemptOutcome, ...] = (
    AttemptOutcome.RETRIED,
    AttemptOutcome.FAILED,
    AttemptOutcome.CANCELLED,
    AttemptOutcome.RESCUED,
)
"""The outcomes ``job_attempts`` stores, in the order of its CHECK constraint."""

AttemptKey = tuple[int, int]
"""``(job_id, attempt)``: what a process keys everything it holds about a running job by. Two
attempts of one job may be held at once (a stale one whose lease was lost and the new one)."""


@dataclass(frozen=True, slots=True)
class Job:
    """One row of ``jobs``, as the service returns it. Times are timezone-aware UTC.

    ``payload`` and ``result`` are decoded JSON; ``timeout_seconds`` is in seconds.
    """

    id: int
    queue: str
    task: str
    payload: dict[str, Any]
    description: str | None
    status: JobStatus
    priority: int
    attempts: int
    max_attempts: int
    rescues: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    worker_id: str | None
    result: Any
    error: str | None
    idempotency_key: str | None
    timeout_seconds: float
    cancel_requested_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to insert: what a client asked for, checked and with defaults applied.

    ``payload_json`` is the payload already encoded as JSON text (its size was checked against
    the limit, in bytes). The first run is at ``run_at`` when given, else ``delay_seconds``
    (>= 0) after the database clock's ``now()`` at insert.
    """

    task: str
    payload_json: str
    queue: str
    priority: int
    description: str | None
    max_attempts: int
    timeout_seconds: float
    delay_seconds: float = 0.0
    run_at: datetime | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker holds: what the runner needs, nothing more.

    ``attempt`` is the number the claim gave this run (the fence for every later write);
    ``wait_seconds`` is how long the job was due before the claim (pickup latency).
    """

    id: int
    queue: str
    task: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    timeout_seconds: float
    wait_seconds: float = 0.0

    @property
    def key(self) -> AttemptKey:
        """``(id, attempt)``: this attempt's identity in the process."""
        return (self.id, self.attempt)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, buffered by the claim coordinator until its next write.

    ``status`` is ``done``, ``failed``, ``cancelled`` or ``todo`` (a retry,
    ``retry_delay_seconds`` from now); ``result_json`` is the result as JSON text (``done``
    only). ``error_type``, ``error_message`` and ``traceback`` describe a failed attempt.
    """

    job_id: int
    attempt: int
    status: JobStatus
    result_json: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    retry_delay_seconds: float = 0.0

    @property
    def key(self) -> AttemptKey:
        """``(job_id, attempt)``: the attempt this outcome belongs to."""
        return (self.job_id, self.attempt)


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a listing keeps (``GET /jobs``, the dashboard's search); None means "any".

    Attributes:
        status, queue, task: equality filters.
        text: a piece of the description, case-insensitive, ``%`` and ``_`` taken literally
            (the dashboard's search).
    """

    status: JobStatus | None = None
    queue: str | None = None
    task: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a job, as ``GET /jobs/{id}/attempts`` lists it. Times are UTC.

    ``outcome`` is one of :class:`AttemptOutcome`.
    """

    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: AttemptOutcome
    error_type: str | None
    error_message: str | None
    traceback: str | None


def find_nul(value: Any, path: str = "payload") -> str | None:
    """The path of the first string (key or value) in ``value`` that contains U+0000, or None.

    PostgreSQL's text and jsonb cannot store U+0000 (PostgreSQL manual, "JSON Types").
    """
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return f"{path} (a key)"
            found = find_nul(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found:
                return found
    return None
