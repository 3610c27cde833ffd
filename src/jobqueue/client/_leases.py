"""The lease protocol's values (docs/workers.md): what ``POST /leases`` and the heartbeat and
report routes answer, and :class:`Failure`, what :meth:`JobQueue.fail_many` takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobqueue.client._models import parse_time

LEASE_LOST_STATUS = "lease_lost"
"""The ``status`` of a batch report item whose lease no longer held."""


def _time(value: Any) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("the answer lacks a required time")
    return parsed


@dataclass(frozen=True)
class LeasedJob:
    """The job a lease holds: what a worker needs to run it.

    Attributes:
        id: the job's id.
        queue: its queue.
        task: its task's name.
        payload: the JSON object to run it with.
        attempt: this attempt's number, from 1.
        max_attempts: attempts allowed in all.
        timeout_seconds: this attempt's time limit, seconds.
    """

    id: int
    queue: str
    task: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    timeout_seconds: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeasedJob:
        """Build from a lease's ``job`` object."""
        return cls(
            id=int(data["id"]),
            queue=data["queue"],
            task=data["task"],
            payload=data.get("payload") or {},
            attempt=int(data["attempt"]),
            max_attempts=int(data["max_attempts"]),
            timeout_seconds=float(data["timeout_seconds"]),
        )


@dataclass(frozen=True)
class Lease:
    """One leased job: run it, heartbeat every ``heartbeat_seconds``, then report it with the
    token (:meth:`JobQueue.complete`, :meth:`~JobQueue.fail` or :meth:`~JobQueue.release`).

    Attributes:
        token: the lease's opaque token; every heartbeat and report names it.
        job: the job.
        expires_at: when the lease runs out unless a heartbeat extends it.
        lease_seconds: the lease's length, seconds.
        heartbeat_seconds: how often to heartbeat, seconds (a third of the lease).
    """

    token: str
    job: LeasedJob
    expires_at: datetime
    lease_seconds: float
    heartbeat_seconds: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lease:
        """Build from an item of ``POST /leases``'s ``leases``."""
        return cls(
            token=data["token"],
            job=LeasedJob.from_json(data["job"]),
            expires_at=_time(data["expires_at"]),
            lease_seconds=float(data["lease_seconds"]),
            heartbeat_seconds=float(data["heartbeat_seconds"]),
        )


@dataclass(frozen=True)
class LeaseBatch:
    """What :meth:`JobQueue.lease` got: the leases (possibly none) and whether the answering
    service is shutting down.

    Attributes:
        leases: the leased jobs, at most ``max_jobs``; empty when none was due within the wait.
        drain: True when the service that answered is shutting down: finish what you hold,
            back off a few seconds, then lease again (another replica, or the restarted one,
            answers).
        completed: the answers to the ``complete`` reports the call carried, in their order
            (as :meth:`JobQueue.complete_many`'s); empty when it carried none.
        failed: the same for the ``fail`` reports it carried.
    """

    leases: list[Lease]
    drain: bool
    completed: list[Report] = field(default_factory=list)
    failed: list[Report] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeaseBatch:
        """Build from the answer of ``POST /leases``."""
        return cls(
            leases=[Lease.from_json(item) for item in data.get("leases", [])],
            drain=bool(data.get("drain", False)),
            completed=[Report.from_json(item) for item in data.get("completed", [])],
            failed=[Report.from_json(item) for item in data.get("failed", [])],
        )


@dataclass(frozen=True)
class HeartbeatItem:
    """What a heartbeat did to one lease.

    Attributes:
        token: the lease's token.
        status: ``extended``; ``lost`` (stop the job and drop its result: another worker may
            run it now); or ``busy`` (neither extended nor lost: send it again next time).
        cancel_requested: True when a cancel was asked: stop the job and report it with
            :meth:`JobQueue.fail` (``retryable=True``); it ends ``cancelled``.
        expires_at: when the lease runs out now, or None (a lost lease).
    """

    token: str
    status: str
    cancel_requested: bool
    expires_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeartbeatItem:
        """Build from an item of a heartbeat answer."""
        return cls(
            token=data["token"],
            status=data["status"],
            cancel_requested=bool(data.get("cancel_requested", False)),
            expires_at=parse_time(data.get("expires_at")),
        )


@dataclass(frozen=True)
class HeartbeatAnswer:
    """What :meth:`JobQueue.heartbeat` got.

    Attributes:
        leases: one item per token sent.
        drain: True when the answering service is shutting down (see :class:`LeaseBatch`).
    """

    leases: list[HeartbeatItem]
    drain: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeartbeatAnswer:
        """Build from the answer of ``POST /leases/heartbeat``."""
        return cls(
            leases=[HeartbeatItem.from_json(item) for item in data.get("leases", [])],
            drain=bool(data.get("drain", False)),
        )


@dataclass(frozen=True)
class Report:
    """What a complete, fail or release did.

    Attributes:
        job_id: the job's id (None for a lost lease in a batch answer, when the service does
            not name it).
        status: the job's status now: ``done`` (complete), ``todo``, ``failed`` or
            ``cancelled`` (fail), ``todo`` (release); in a batch answer, ``lease_lost`` for a
            lease that no longer held (nothing was written for it).
        repeated: True when this report had been written already (a repeat after a lost
            answer): nothing changed.
        token: the lease's token (batch answers), else None.
    """

    job_id: int | None
    status: str
    repeated: bool
    token: str | None = None

    @property
    def lost(self) -> bool:
        """True for a batch item whose lease no longer held (``status == "lease_lost"``)."""
        return self.status == LEASE_LOST_STATUS

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        """Build from a report answer, or an item of a batch report answer."""
        job_id = data.get("job_id")
        return cls(
            job_id=None if job_id is None else int(job_id),
            status=data["status"],
            repeated=bool(data.get("repeated", False)),
            token=data.get("token"),
        )


@dataclass(frozen=True)
class Failure:
    """One failed job for :meth:`JobQueue.fail_many` (the fields of ``POST
    /leases/{token}/fail``).

    Attributes:
        token: the lease's token.
        error_type: the exception's type, e.g. ``ValueError``.
        message: what went wrong (the service keeps 4,000 characters).
        traceback: the traceback text (the service keeps 4,000 characters).
        retryable: False to end the job ``failed`` now; True to retry it while it has
            attempts left.
        retry_delay_seconds: run the retry after this many seconds; None: the service's
            backoff.
    """

    token: str
    error_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    retryable: bool = True
    retry_delay_seconds: float | None = None

    def to_json(self, *, with_token: bool) -> dict[str, Any]:
        """The fail body (with the token for a batch item): the fields that are set."""
        body: dict[str, Any] = {"token": self.token} if with_token else {}
        optional = {
            "error_type": self.error_type,
            "message": self.message,
            "traceback": self.traceback,
            "retry_delay_seconds": self.retry_delay_seconds,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        body["retryable"] = self.retryable
        return body
