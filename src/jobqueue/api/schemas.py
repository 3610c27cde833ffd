"""Pydantic models for the API's requests and responses, with the examples /docs shows.

Requests are strict: a boolean is not a number, a string is not a number, ``5.0`` is not an
integer (an integer is still a number of seconds), and ``run_at`` is an RFC 3339 date-time with
an offset, never a Unix timestamp or a date alone. Integers and seconds in the URL (ids,
``limit``, ``wait_seconds``) are decimal digits only: no sign, no ``_``, no exponent.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from jobqueue.encoding import MAX_ID
from jobqueue.jobs import (
    QUEUE_NAME_PATTERN,
    SCHEDULE_KEY_PREFIX,
    TASK_NAME_PATTERN,
    Attempt,
    Job,
    JobStatus,
)

MAX_QUEUE_LENGTH = 100
MAX_TASK_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_DELAY_SECONDS = 366 * 86_400 * 10  # ten years
MAX_BATCH = 10_000

# RFC 3339 section 5.6 date-time (with its note: "T" may be a space, "T" and "Z" lower case).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_DECIMAL_INTEGER = re.compile(r"[0-9]{1,20}")
_DECIMAL_SECONDS = re.compile(r"[0-9]{1,10}(\.[0-9]{1,9})?")


def rfc3339(value: object) -> object:
    """Let through a string in RFC 3339 date-time form (with an offset), a ``datetime`` or
    None; refuse anything else (a Unix timestamp, a date without a time, a time without an
    offset, a number) with a message that says what to send. Pydantic then parses the string.

    Raises:
        PydanticCustomError: type ``rfc3339``.
    """
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        match = _RFC3339.fullmatch(value)
        if match and match.group("offset"):
            return value
        if match:
            raise PydanticCustomError(
                "rfc3339",
                "add a timezone offset (Z or +hh:mm), e.g. 2026-11-29T12:00:00Z (got {got})",
                {"got": value[:40]},
            )
    if isinstance(value, bool):
        got = "a boolean"
    else:
        got = "a number" if isinstance(value, int | float) else repr(value)[:40]
    raise PydanticCustomError(
        "rfc3339",
        "give an RFC 3339 date-time with a timezone offset, e.g. 2026-11-29T12:00:00Z or "
        "2026-11-29T13:00:00+01:00 (got {got})",
        {"got": got},
    )


def decimal_integer(value: object) -> object:
    """Let through a URL parameter written as 1 to 20 ASCII decimal digits (or an ``int``).

    Raises:
        PydanticCustomError: type ``decimal_integer``.
    """
    if isinstance(value, str) and not _DECIMAL_INTEGER.fullmatch(value):
        raise PydanticCustomError(
            "decimal_integer", "give a whole number in decimal digits, e.g. 42"
        )
    return value


def decimal_seconds(value: object) -> object:
    """Let through a URL parameter written as decimal seconds (``5``, ``2.5``) or a number.

    Raises:
        PydanticCustomError: type ``decimal_seconds``.
    """
    if isinstance(value, str) and not _DECIMAL_SECONDS.fullmatch(value):
        raise PydanticCustomError(
            "decimal_seconds", "give seconds in decimal digits, e.g. 5 or 2.5"
        )
    return value


MAX_ID_DIGITS = len(str(MAX_ID))


def bigint_digits(value: object) -> object:
    """Let through a URL parameter of at most 19 decimal digits (or an ``int``); refuse a
    longer one as out of range, with the words pydantic uses for 2^63 (the route's ``le``).
    Without it the digits would reach ``int()``, which refuses more than 4,300 of them with a
    ``ValueError`` (Python's integer string conversion limit), and pydantic would parse up to
    that limit for nothing.

    Raises:
        PydanticCustomError: type ``less_than_equal``.
    """
    if isinstance(value, str) and len(value) > MAX_ID_DIGITS:
        raise PydanticCustomError(
            "less_than_equal", "Input should be less than or equal to {le}", {"le": MAX_ID}
        )
    return value


def idempotency_key_header(value: object) -> object:
    """Let through an ``Idempotency-Key`` header of printable ASCII (``!`` to ``~`` and spaces).

    A header's bytes past ASCII reach the app as Latin-1 (RFC 9110 section 5.5 calls them
    obs-text, with no defined charset): ``clé`` sent as UTF-8 would be stored as ``clÃ©``, and a
    later request with the same key in the body would not match it. The body's
    ``idempotency_key`` field takes any text.

    Raises:
        PydanticCustomError: type ``visible_ascii``.
    """
    if isinstance(value, str) and not (value.isascii() and value.isprintable()):
        raise PydanticCustomError(
            "visible_ascii",
            "the Idempotency-Key header must be visible ASCII (letters, digits, punctuation "
            "and spaces): put other text in the body's idempotency_key field",
        )
    return client_key(value)


def client_key(value: object) -> object:
    """Refuse an idempotency key of the scheduler's (``schedule:…``: see
    :data:`jobqueue.jobs.SCHEDULE_KEY_PREFIX`).

    Raises:
        PydanticCustomError: type ``reserved_key``.
    """
    if isinstance(value, str) and value.startswith(SCHEDULE_KEY_PREFIX):
        raise PydanticCustomError(
            "reserved_key",
            "idempotency keys starting with 'schedule:' are reserved for the jobs of "
            "schedules: use another key",
        )
    return value


DecimalInteger = BeforeValidator(decimal_integer)
"""Annotate an ``int`` URL parameter (after its ``Query``/``Path``) with this."""
DecimalSeconds = BeforeValidator(decimal_seconds)
"""Annotate a ``float`` URL parameter (after its ``Query``) with this."""
IdempotencyKeyHeader = BeforeValidator(idempotency_key_header)
"""Annotate the ``Idempotency-Key`` header parameter (after its ``Header``) with this."""
BigintDigits = BeforeValidator(bigint_digits)
"""Annotate a job id taken from the path as digits (``{job_id:job_id}``) with this."""


class JobCreate(BaseModel):
    """Body of ``POST /jobs``. Every field has a default: ``{}`` creates an ``echo`` job.

    Strict (see the module's docstring): ``"priority": true`` or ``"max_attempts": "3"`` is a
    422, ``"timeout_seconds": 5`` is fine.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"description": "Process this task"},
                {"task": "sleep", "payload": {"seconds": 2}, "priority": 5},
                {"task": "fail", "payload": {"message": "boom"}, "max_attempts": 1},
                {"task": "echo", "payload": {"n": 1}, "delay_seconds": 60},
                {"task": "echo", "run_at": "2030-01-01T09:00:00Z", "idempotency_key": "o-42"},
            ]
        },
    )

    task: str = Field(
        default="echo",
        min_length=1,
        max_length=MAX_TASK_LENGTH,
        pattern=TASK_NAME_PATTERN,
        description="A registered task name.",
    )
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description="A JSON object handed to the task: at most JOBQUEUE_MAX_PAYLOAD_BYTES "
        "(default 1 MiB) of compact UTF-8 JSON (413 over it), nesting at most "
        "JOBQUEUE_MAX_PAYLOAD_DEPTH (default 64) levels of objects and arrays (422 deeper).",
    )
    queue: str = Field(
        default="default",
        min_length=1,
        max_length=MAX_QUEUE_LENGTH,
        pattern=QUEUE_NAME_PATTERN,
        description="Queue name.",
    )
    priority: int = Field(default=0, ge=-100, le=100, description="Higher runs first.")
    description: str | None = Field(
        default=None, max_length=MAX_DESCRIPTION_LENGTH, description="Free text for people."
    )
    max_attempts: int | None = Field(
        default=None, ge=1, le=1000, description="Attempts in all (default from settings)."
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="Per-attempt timeout in seconds.",
    )
    run_at: Annotated[AwareDatetime | None, BeforeValidator(rfc3339)] = Field(
        default=None,
        strict=False,  # JSON has no datetime: the string is checked by rfc3339, then parsed
        description="First run not before this time: an RFC 3339 date-time with an offset "
        "(Z or +hh:mm), e.g. 2026-11-29T12:00:00Z; not a Unix timestamp.",
    )
    delay_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY_SECONDS,
        allow_inf_nan=False,
        description="First run after this many seconds (not with run_at: the service checks).",
    )
    idempotency_key: Annotated[str | None, AfterValidator(client_key)] = Field(
        default=None,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Requests with the same key create one job (also the Idempotency-Key "
        "header). Keys starting with 'schedule:' are reserved for the jobs of schedules.",
    )


class JobOut(BaseModel):
    """A job as the API returns it. Times are RFC 3339 with an offset (UTC)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "task": "echo",
                    "queue": "default",
                    "status": "done",
                    "payload": {},
                    "result": {"echo": {}},
                    "error": None,
                    "attempts": 1,
                    "max_attempts": 3,
                    "priority": 0,
                    "description": "Process this task",
                    "created_at": "2026-11-29T12:00:00.000000Z",
                    "run_at": "2026-11-29T12:00:00.000000Z",
                    "started_at": "2026-11-29T12:00:00.002000Z",
                    "finished_at": "2026-11-29T12:00:00.003000Z",
                    "timeout_seconds": 300.0,
                    "worker_id": "host:1234:a1b2c3",
                    "lease_expires_at": None,
                    "rescues": 0,
                    "idempotency_key": None,
                    "cancel_requested_at": None,
                }
            ]
        }
    )

    id: int
    task: str
    queue: str
    status: JobStatus
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
    worker_id: str | None = Field(
        description="The worker holding the job's lease, or the one that ran its last attempt "
        "(kept after a retry until the next claim); null before its first claim."
    )
    lease_expires_at: datetime | None
    rescues: int
    idempotency_key: str | None
    cancel_requested_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """Build from the domain :class:`jobqueue.jobs.Job`."""
        return cls(
            id=job.id,
            task=job.task,
            queue=job.queue,
            status=job.status,
            payload=job.payload,
            result=job.result,
            error=job.error,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            priority=job.priority,
            description=job.description,
            created_at=job.created_at,
            run_at=job.run_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            timeout_seconds=job.timeout_seconds,
            worker_id=job.worker_id,
            lease_expires_at=job.lease_expires_at,
            rescues=job.rescues,
            idempotency_key=job.idempotency_key,
            cancel_requested_at=job.cancel_requested_at,
        )


class JobPage(BaseModel):
    """Body of ``GET /jobs``: ``items`` newest first, at most ``limit`` of them and at most
    ``JOBQUEUE_MAX_PAGE_BYTES`` of payloads and results (one job at least); pass ``next_cursor``
    as ``cursor`` until it is null."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [], "next_cursor": "aWQ6MTI"}]}
    )

    items: list[JobOut]
    next_cursor: str | None


class BatchCreate(BaseModel):
    """Body of ``POST /jobs/batch``: 1 to 10,000 job specs, created all or nothing (each as
    strict as :class:`JobCreate`)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"jobs": [{"task": "echo", "payload": {"n": 1}}, {"task": "echo"}]}]
        },
    )

    jobs: list[JobCreate] = Field(min_length=1, max_length=MAX_BATCH)


class BatchOut(BaseModel):
    """Body of a batch answer: the ids of the jobs, in the order of the request (for a spec
    whose idempotency key matched, the existing job's id). ``GET /jobs/{id}`` has the rest."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"ids": [41, 42, 43]}]})

    ids: list[int]


class AttemptOut(BaseModel):
    """One attempt of a job. ``outcome``: retried, failed, cancelled, rescued, done, running."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "attempt": 1,
                    "worker_id": "host:1234:a1b2c3",
                    "started_at": "2026-11-29T12:00:00Z",
                    "finished_at": "2026-11-29T12:00:01Z",
                    "outcome": "retried",
                    "error_type": "RuntimeError",
                    "error_message": "boom",
                    "traceback": "Traceback (most recent call last): ...",
                }
            ]
        }
    )

    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error_type: str | None
    error_message: str | None
    traceback: str | None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        """Build from the domain :class:`jobqueue.jobs.Attempt`."""
        return cls(
            attempt=attempt.attempt,
            worker_id=attempt.worker_id,
            started_at=attempt.started_at,
            finished_at=attempt.finished_at,
            outcome=attempt.outcome,
            error_type=attempt.error_type,
            error_message=attempt.error_message,
            traceback=attempt.traceback,
        )


class AttemptList(BaseModel):
    """Body of ``GET /jobs/{id}/attempts``: oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": []}]})

    items: list[AttemptOut]


class ErrorOut(BaseModel):
    """Body of every error response: ``detail`` says what went wrong and what to fix."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "job 42 does not exist"}]})

    detail: Any


class Health(BaseModel):
    """Body of ``/healthz`` and ``/readyz``: ``status`` is ``ok`` or ``unavailable``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "ok", "checks": {"database": "ok"}}]}
    )

    status: str
    checks: dict[str, str] = Field(default_factory=dict)
