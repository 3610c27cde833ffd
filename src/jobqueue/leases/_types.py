"""What the lease use cases take and give back (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobqueue.jobs import AttemptKey, ClaimedJob, JobStatus


@dataclass(frozen=True, slots=True)
class ClaimSpec:
    """What to claim.

    Attributes:
        queue: one queue per claim (so the scan walks ``ix_jobs_claim`` in order).
        limit: at most this many jobs (1 to 1000).
        tasks: only jobs of these tasks: a process claims only what it can run; None: any
            task (a remote worker that names none).
        lease_seconds: the lease each claimed job gets, in seconds from the database's now.
    """

    queue: str
    limit: int
    tasks: tuple[str, ...] | None
    lease_seconds: float


@dataclass(frozen=True, slots=True)
class Refused:
    """An outcome the fence refused: the attempt no longer holds the job's lease.

    Attributes:
        key: the stale attempt ``(job_id, attempt)``.
        current_attempt: the job's attempt number now; None when the row is gone.
        current_status: the job's status now; None when the row is gone.
    """

    key: AttemptKey
    current_attempt: int | None
    current_status: JobStatus | None


@dataclass(frozen=True, slots=True)
class FinishResult:
    """What a finish wrote.

    Attributes:
        written: ``{attempt: status written}`` (``todo`` for a retry; ``cancelled`` when a
            cancel was requested meanwhile).
        refused: the outcomes the fence refused (lease lost); nothing of them was written.
        claimed: jobs claimed in the same statement (see :meth:`LeaseStore.finish`).
        labels: ``{attempt: (queue, task)}`` of the written outcomes, when no claim went with
            the finish (the caller has no other record of them: the lease API).
    """

    written: dict[AttemptKey, JobStatus] = field(default_factory=dict)
    labels: dict[AttemptKey, tuple[str, str]] = field(default_factory=dict)
    refused: list[Refused] = field(default_factory=list)
    claimed: list[ClaimedJob] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """What a heartbeat found.

    Attributes:
        extended: attempts whose lease now runs ``lease_seconds`` from the database's now.
        lost: attempts that no longer hold their job's lease (it expired, was rescued and
            perhaps claimed again, or the row is gone): stop them, drop their outcome.
        cancel_requested: attempts (among ``extended``) whose job has a cancel request.
    """

    extended: frozenset[AttemptKey] = frozenset()
    lost: frozenset[AttemptKey] = frozenset()
    cancel_requested: frozenset[AttemptKey] = frozenset()


@dataclass(frozen=True, slots=True)
class Rescued:
    """A job whose lease had expired, put back by the rescuer.

    Attributes:
        job_id, queue, task: the job.
        attempt: the attempt that lost its lease (it counts).
        status: where the job went: ``todo``, or ``failed`` with no attempts left, or
            ``cancelled`` when a cancel had been requested.
        worker_id: the worker that held the lease.
    """

    job_id: int
    queue: str
    task: str
    attempt: int
    status: JobStatus
    worker_id: str | None
