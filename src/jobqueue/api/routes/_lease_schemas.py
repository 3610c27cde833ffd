"""Request and response bodies of the lease API (``api/routes/leases.py``), with the examples
/docs shows. Requests are strict like every other body (``api/schemas.py``): a boolean is not a
number, unknown fields are refused. Bounds come from ``leases/_remote.py``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from jobqueue import leases as remote
from jobqueue.api.schemas import MAX_DELAY_SECONDS, MAX_QUEUE_LENGTH, MAX_TASK_LENGTH
from jobqueue.jobs import QUEUE_NAME_PATTERN, TASK_NAME_PATTERN

QueueName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_QUEUE_LENGTH, pattern=QUEUE_NAME_PATTERN)
]
TaskName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TASK_LENGTH, pattern=TASK_NAME_PATTERN)
]
WorkerName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=remote.WORKER_NAME.pattern)
]
TokenText = Annotated[str, StringConstraints(min_length=1, max_length=remote.MAX_TOKEN_CHARS)]
LeaseSeconds = Annotated[
    float,
    Field(
        ge=remote.MIN_LEASE_SECONDS,
        le=remote.MAX_LEASE_SECONDS,
        allow_inf_nan=False,
        description="A lease's length, seconds (1 to 3600).",
    ),
]
_STRICT = ConfigDict(extra="forbid", strict=True)
_TOKEN = "jl1.MTIuMS4zLjMwMDAwLmFub255bW91cy9pbWctMQ"


class WorkerIn(BaseModel):
    """A worker process as it describes itself."""

    model_config = _STRICT

    name: WorkerName = Field(description="Unique per worker process: 1-100 of A-Za-z0-9_.:@-")
    host: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Where it runs (default: the client's address).",
    )
    slots: int | None = Field(
        default=None, ge=1, le=100_000, description="Jobs it runs at once (default: max_jobs)."
    )


class LeaseIn(BaseModel):
    """Body of ``POST /leases``."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "queues": ["default"],
                    "tasks": ["resize"],
                    "max_jobs": 10,
                    "lease_seconds": 30,
                    "wait_seconds": 10,
                    "worker": "img-1",
                },
                {"queues": ["images"], "worker": {"name": "img-1", "host": "box-3", "slots": 50}},
            ]
        },
    )

    queues: list[QueueName] = Field(
        min_length=1, max_length=remote.MAX_QUEUES, description="Lease from these, in order."
    )
    tasks: list[TaskName] | None = Field(
        default=None,
        min_length=1,
        max_length=remote.MAX_TASKS,
        description="Only jobs of these tasks (omitted: any task of the queues).",
    )
    max_jobs: int = Field(default=1, ge=1, le=remote.MAX_JOBS, description="At most this many.")
    lease_seconds: LeaseSeconds | None = Field(
        default=None, description="Each lease's length, seconds (default JOBQUEUE_LEASE_SECONDS)."
    )
    wait_seconds: float = Field(
        default=0.0,
        ge=0,
        le=remote.MAX_WAIT_SECONDS,
        allow_inf_nan=False,
        description="Wait up to this long for a job when none is due, seconds (0 to 20).",
    )
    worker: WorkerName | WorkerIn = Field(
        description="The worker's name, or {name, host, slots}: shown on the processes page."
    )
    complete: list[CompleteItem] | None = Field(
        default=None,
        max_length=remote.MAX_TOKENS,
        description="Reports riding on this call, as the items of POST /leases/complete: "
        "written before the lease, answered in `completed`. A call that carries reports does "
        "not wait (an empty list or null carries none).",
    )
    fail: list[FailItem] | None = Field(
        default=None,
        max_length=remote.MAX_TOKENS,
        description="As `complete`, for the items of POST /leases/fail (answered in `failed`).",
    )

    @property
    def carries_reports(self) -> bool:
        """True when the call carries reports (it then does not wait)."""
        return bool(self.complete or self.fail)

    def to_request(self, client_host: str, default_lease_seconds: float) -> remote.LeaseRequest:
        """The use case's request; ``client_host`` and ``max_jobs`` fill what the worker did
        not say about itself. A call that carries reports waits 0 s: their answers must not
        sit in a long-poll."""
        worker = self.worker if isinstance(self.worker, WorkerIn) else WorkerIn(name=self.worker)
        return remote.LeaseRequest(
            queues=tuple(dict.fromkeys(self.queues)),
            tasks=None if self.tasks is None else tuple(dict.fromkeys(self.tasks)),
            max_jobs=self.max_jobs,
            lease_seconds=self.lease_seconds or default_lease_seconds,
            wait_seconds=0.0 if self.carries_reports else self.wait_seconds,
            worker=remote.RemoteWorker(
                name=worker.name,
                host=worker.host or client_host[:255],
                slots=worker.slots or self.max_jobs,
            ),
        )


class LeasedJobOut(BaseModel):
    """The job of a lease (``timeout_seconds``: the time it may run, seconds)."""

    id: int
    queue: str
    task: str
    payload: Any
    attempt: int
    max_attempts: int
    timeout_seconds: float


class LeaseOut(BaseModel):
    """One lease: its token, expiry (UTC), length and heartbeat interval (seconds), job."""

    token: str
    expires_at: datetime
    lease_seconds: float
    heartbeat_seconds: float
    job: LeasedJobOut


class LeasesOut(BaseModel):
    """Answer of ``POST /leases``: the leases (maybe none) and whether to drain."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "leases": [
                        {
                            "token": _TOKEN,
                            "expires_at": "2026-12-07T12:00:30.000000Z",
                            "lease_seconds": 30.0,
                            "heartbeat_seconds": 10.0,
                            "job": {
                                "id": 12,
                                "queue": "default",
                                "task": "resize",
                                "payload": {"w": 64},
                                "attempt": 1,
                                "max_attempts": 3,
                                "timeout_seconds": 300.0,
                            },
                        }
                    ],
                    "drain": False,
                }
            ]
        }
    )

    leases: list[LeaseOut]
    drain: bool
    completed: list[ReportItemOut] = Field(
        default_factory=list, description="The answers to `complete`, in its order."
    )
    failed: list[ReportItemOut] = Field(
        default_factory=list, description="The answers to `fail`, in its order."
    )


class HeartbeatIn(BaseModel):
    """Body of ``POST /leases/heartbeat``."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"tokens": [_TOKEN]}, {"tokens": [_TOKEN], "lease_seconds": 60}]
        },
    )

    tokens: list[TokenText] = Field(min_length=1, max_length=remote.MAX_TOKENS)
    lease_seconds: LeaseSeconds | None = Field(
        default=None, description="The new length, seconds (default: each lease's own)."
    )


class HeartbeatOneIn(BaseModel):
    """Body of ``POST /leases/{token}/heartbeat`` (optional)."""

    model_config = _STRICT

    lease_seconds: LeaseSeconds | None = None


class RenewalOut(BaseModel):
    """One lease's heartbeat: ``extended``, ``lost`` or ``busy``; its new expiry (UTC) when
    extended."""

    token: str
    status: str
    cancel_requested: bool
    expires_at: datetime | None

    @classmethod
    def of(cls, renewal: remote.Renewal) -> RenewalOut:
        """From the use case's :class:`~jobqueue.leases.Renewal`."""
        return cls(
            token=renewal.token,
            status=renewal.status,
            cancel_requested=renewal.cancel_requested,
            expires_at=renewal.expires_at,
        )


class RenewalOneOut(RenewalOut):
    """Answer of ``POST /leases/{token}/heartbeat``: the renewal, and whether to drain."""

    drain: bool


class RenewalsOut(BaseModel):
    """Answer of ``POST /leases/heartbeat``."""

    leases: list[RenewalOut]
    drain: bool


class CompleteIn(BaseModel):
    """Body of ``POST /leases/{token}/complete`` (optional: no body is a null result)."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"result": {"ok": True}}]}
    )

    result: Any = Field(default=None, description="Any JSON value (JOBQUEUE_MAX_RESULT_BYTES).")


class CompleteItem(CompleteIn):
    """One item of ``POST /leases/complete``."""

    token: TokenText


class CompleteManyIn(BaseModel):
    """Body of ``POST /leases/complete``."""

    model_config = _STRICT

    leases: list[CompleteItem] = Field(min_length=1, max_length=remote.MAX_TOKENS)


class FailIn(BaseModel):
    """Body of ``POST /leases/{token}/fail`` (optional; every field has a default)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"error_type": "ValueError", "message": "bad image", "retryable": False},
                {"error_type": "Timeout", "message": "upstream slow", "retry_delay_seconds": 30},
            ]
        },
    )

    error_type: str = Field(
        default="Error", description="Stored cut to 200 characters; empty reads as Error."
    )
    message: str = Field(default="", description="Stored cut to 4,000 characters.")
    traceback: str | None = Field(
        default=None, description="Stored cut to its last 4,000 characters."
    )
    retryable: bool = Field(default=True, description="False: the job ends failed now.")
    retry_delay_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY_SECONDS,
        allow_inf_nan=False,
        description="Delay before the retry, seconds (default: the service's backoff).",
    )

    def failure(self) -> remote.Failure:
        """The use case's :class:`~jobqueue.leases.Failure`."""
        return remote.Failure(
            error_type=self.error_type or "Error",
            message=self.message,
            traceback=self.traceback,
            retryable=self.retryable,
            retry_delay_seconds=self.retry_delay_seconds,
        )


class FailItem(FailIn):
    """One item of ``POST /leases/fail``."""

    token: TokenText


class FailManyIn(BaseModel):
    """Body of ``POST /leases/fail``."""

    model_config = _STRICT

    leases: list[FailItem] = Field(min_length=1, max_length=remote.MAX_TOKENS)


class TokensIn(BaseModel):
    """Body of ``POST /leases/release``."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"tokens": [_TOKEN]}]}
    )

    tokens: list[TokenText] = Field(min_length=1, max_length=remote.MAX_TOKENS)


class ReportOut(BaseModel):
    """What a report did: the job's ``status`` written (``done``, ``todo``, ``failed``,
    ``cancelled``) or ``lease_lost`` (batch forms only); ``repeated`` when it had been written
    before."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"job_id": 12, "status": "done", "repeated": False}]}
    )

    job_id: int
    status: str
    repeated: bool

    @classmethod
    def of(cls, report: remote.Report) -> ReportOut:
        """From the use case's :class:`~jobqueue.leases.Report`."""
        return cls(job_id=report.job_id, status=report.status, repeated=report.repeated)


class ReportItemOut(ReportOut):
    """One item of a batch report, with its token."""

    token: str


class ReportsOut(BaseModel):
    """Answer of the batch reports, one item per token in the order given."""

    leases: list[ReportItemOut]


# The hot answers (a lease batch, a report batch, a heartbeat batch) are written as JSON here
# rather than through their models: building and validating a model per lease cost about a
# sixth of the API's CPU in a remote drain. The models above stay the documented shapes; a test
# checks that these answers validate against them.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _time(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with ``Z``, as the models serialize a datetime."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _json(value: Any) -> Response:
    return Response(_ENCODER.encode(value).encode(), media_type="application/json")


def _report_items(reports: list[remote.Report]) -> list[dict[str, Any]]:
    return [
        {"job_id": r.job_id, "status": r.status, "repeated": r.repeated, "token": r.token}
        for r in reports
    ]


def leases_answer(
    granted: list[remote.Granted],
    drain: bool,
    completed: list[remote.Report] | None = None,
    failed: list[remote.Report] | None = None,
) -> Response:
    """The :class:`LeasesOut` of ``granted`` (and of the reports the call carried), as a
    response."""
    return _json(
        {
            "leases": [
                {
                    "token": g.token,
                    "expires_at": _time(g.expires_at),
                    "lease_seconds": float(g.lease_seconds),
                    "heartbeat_seconds": float(g.heartbeat_seconds),
                    "job": {
                        "id": g.job.id,
                        "queue": g.job.queue,
                        "task": g.job.task,
                        "payload": g.job.payload,
                        "attempt": g.job.attempt,
                        "max_attempts": g.job.max_attempts,
                        "timeout_seconds": float(g.job.timeout_seconds),
                    },
                }
                for g in granted
            ],
            "drain": drain,
            "completed": _report_items(completed or []),
            "failed": _report_items(failed or []),
        }
    )


def renewals_answer(renewals: list[remote.Renewal], drain: bool) -> Response:
    """The :class:`RenewalsOut` of ``renewals``, as a response."""
    return _json(
        {
            "leases": [
                {
                    "token": r.token,
                    "status": r.status,
                    "cancel_requested": r.cancel_requested,
                    "expires_at": _time(r.expires_at),
                }
                for r in renewals
            ],
            "drain": drain,
        }
    )


def reports_answer(reports: list[remote.Report]) -> Response:
    """The :class:`ReportsOut` of ``reports``, as a response."""
    return _json({"leases": _report_items(reports)})


LeaseIn.model_rebuild()  # its report items are defined below it
LeasesOut.model_rebuild()
