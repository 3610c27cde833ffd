"""In-memory stand-ins for unit tests (no PostgreSQL): a lease store with the same rules as
``leases/`` (fenced finish, strict heartbeat, rescue counts the attempt) and a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobqueue.jobs import AttemptKey, ClaimedJob, JobStatus, Outcome
from jobqueue.leases import ClaimSpec, FinishResult, HeartbeatResult, Refused, Rescued


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Row:
    """One job as the fake store keeps it."""

    id: int
    queue: str
    task: str
    payload: dict[str, Any] = field(default_factory=dict)
    status: JobStatus = JobStatus.TODO
    attempts: int = 0
    max_attempts: int = 3
    priority: int = 0
    run_at: float = 0.0
    worker_id: str | None = None
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    result: str | None = None
    error: str | None = None
    timeout_seconds: float = 300.0


class InMemoryLeases:
    """A :class:`jobqueue.leases.LeaseStore` over a dict, for one worker id.

    Every worker id shares the ``rows`` of the store it was made from (:meth:`for_worker`), so
    two "processes" can race in one test. ``gate`` (when set) makes ``claim`` and ``finish``
    wait on it before they look at the rows: a test can act while a statement is "in flight".
    """

    def __init__(self, worker_id: str = "w1", clock: FakeClock | None = None) -> None:
        self.worker_id = worker_id
        self.clock = clock or FakeClock()
        self.rows: dict[int, Row] = {}
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.in_flight = asyncio.Event()

    def for_worker(self, worker_id: str) -> InMemoryLeases:
        """Another worker's view of the same rows."""
        other = InMemoryLeases(worker_id, self.clock)
        other.rows = self.rows
        return other

    def add(self, task: str = "t", queue: str = "default", **fields: Any) -> Row:
        """Insert a ``todo`` job; returns its row."""
        row = Row(id=len(self.rows) + 1, queue=queue, task=task, run_at=self.clock(), **fields)
        self.rows[row.id] = row
        return row

    async def _pass_gate(self) -> None:
        self.in_flight.set()
        if self.gate is not None:
            await self.gate.wait()
        self.in_flight.clear()

    def _claim_now(self, spec: ClaimSpec, visible: set[int] | None = None) -> list[ClaimedJob]:
        now = self.clock()
        due = [
            row
            for row in self.rows.values()
            if (visible is None or row.id in visible)
            and row.status is JobStatus.TODO
            and row.queue == spec.queue
            and (spec.tasks is None or row.task in spec.tasks)
            and row.run_at <= now
        ]
        due.sort(key=lambda row: (-row.priority, row.run_at, row.id))
        claimed: list[ClaimedJob] = []
        for row in due[: spec.limit]:
            row.status = JobStatus.IN_PROGRESS
            row.attempts += 1
            row.worker_id = self.worker_id
            row.lease_expires_at = now + spec.lease_seconds
            claimed.append(
                ClaimedJob(
                    row.id,
                    row.queue,
                    row.task,
                    row.payload,
                    row.attempts,
                    row.max_attempts,
                    row.timeout_seconds,
                )
            )
        return claimed

    async def claim(self, spec: ClaimSpec) -> list[ClaimedJob]:
        """As :func:`jobqueue.leases.claim`."""
        self.calls.append("claim")
        visible = set(self.rows)  # the statement's snapshot: rows added meanwhile are unseen
        await self._pass_gate()
        return self._claim_now(spec, visible)

    async def finish(
        self, outcomes: Sequence[Outcome], claim_spec: ClaimSpec | None
    ) -> FinishResult:
        """As :func:`jobqueue.leases.finish` (fenced by status, worker and attempt)."""
        self.calls.append("finish" if claim_spec is None else "finish+claim")
        visible = set(self.rows)
        await self._pass_gate()
        written: dict[AttemptKey, JobStatus] = {}
        refused: list[Refused] = []
        for outcome in outcomes:
            row = self.rows.get(outcome.job_id)
            if (
                row is None
                or row.status is not JobStatus.IN_PROGRESS
                or row.worker_id != self.worker_id
                or row.attempts != outcome.attempt
            ):
                refused.append(
                    Refused(
                        outcome.key,
                        None if row is None else row.attempts,
                        None if row is None else row.status,
                    )
                )
                continue
            status = outcome.status
            if status is JobStatus.TODO and row.cancel_requested:
                status = JobStatus.CANCELLED
            row.status = status
            row.result = outcome.result_json
            row.error = outcome.error_message
            row.lease_expires_at = None
            if status is JobStatus.TODO:
                row.run_at = self.clock() + outcome.retry_delay_seconds
                row.worker_id = None
            written[outcome.key] = status
        claimed = [] if claim_spec is None else self._claim_now(claim_spec, visible)
        return FinishResult(written=written, refused=refused, claimed=claimed)

    async def heartbeat(self, keys: Sequence[AttemptKey], lease_seconds: float) -> HeartbeatResult:
        """As :func:`jobqueue.leases.heartbeat` (an expired lease is lost)."""
        self.calls.append("heartbeat")
        now = self.clock()
        extended: set[AttemptKey] = set()
        lost: set[AttemptKey] = set()
        cancel: set[AttemptKey] = set()
        for job_id, attempt in keys:
            row = self.rows.get(job_id)
            ours = (
                row is not None
                and row.status is JobStatus.IN_PROGRESS
                and row.worker_id == self.worker_id
                and row.attempts == attempt
                and row.lease_expires_at is not None
                and row.lease_expires_at > now
            )
            if not ours or row is None:
                lost.add((job_id, attempt))
                continue
            row.lease_expires_at = now + lease_seconds
            extended.add((job_id, attempt))
            if row.cancel_requested:
                cancel.add((job_id, attempt))
        return HeartbeatResult(frozenset(extended), frozenset(lost), frozenset(cancel))

    async def release(self, keys: Sequence[AttemptKey]) -> set[AttemptKey]:
        """As :func:`jobqueue.leases.release`."""
        self.calls.append("release")
        released: set[AttemptKey] = set()
        for job_id, attempt in keys:
            row = self.rows.get(job_id)
            if (
                row is not None
                and row.status is JobStatus.IN_PROGRESS
                and row.worker_id == self.worker_id
                and row.attempts == attempt
            ):
                row.status = JobStatus.TODO
                row.attempts -= 1
                row.worker_id = None
                row.lease_expires_at = None
                released.add((job_id, attempt))
        return released

    def rescue(self) -> list[Rescued]:
        """As :func:`jobqueue.leases.rescue`: expired leases back to todo (or failed)."""
        now = self.clock()
        rescued: list[Rescued] = []
        for row in self.rows.values():
            expires = row.lease_expires_at
            if row.status is JobStatus.IN_PROGRESS and expires is not None and expires < now:
                status = JobStatus.FAILED if row.attempts >= row.max_attempts else JobStatus.TODO
                rescued.append(
                    Rescued(row.id, row.queue, row.task, row.attempts, status, row.worker_id)
                )
                row.status = status
                row.worker_id = None
                row.lease_expires_at = None
                row.run_at = now
        return rescued

    async def close(self) -> None:
        """Nothing to give back."""
