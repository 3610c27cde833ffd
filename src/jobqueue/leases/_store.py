"""The lease use cases: the functions on a connection, and the store the worker pool uses.

The functions (``claim``, ``finish``, ``heartbeat``, ``release``, ``rescue``) take an asyncpg
connection from their caller and run one statement each: any client can call them (the
in-process pool through :class:`PostgresLeases`, an HTTP lease API with a pooled connection).
:class:`LeaseStore` is the protocol the in-process coordinator depends on, so that it can be
unit-tested against an in-memory store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db.engine import HeldConnection, connect
from jobqueue.errors import OutcomeRejected
from jobqueue.jobs import AttemptKey, ClaimedJob, JobStatus, Outcome
from jobqueue.leases import _statements as sql
from jobqueue.leases._types import ClaimSpec, FinishResult, HeartbeatResult, Refused, Rescued

MAX_FINISH_BATCH = 400
"""Outcomes per finish statement; 400 ids keep the "finished" NOTIFY payload under 8000 bytes."""

RESCUE_BATCH = 1000
"""Jobs per rescue statement."""


def _claimed(row: asyncpg.Record) -> ClaimedJob:
    return ClaimedJob(
        id=row["id"],
        queue=row["queue"],
        task=row["task"],
        payload=row["payload"],
        attempt=row["attempts"],
        max_attempts=row["max_attempts"],
        timeout_seconds=row["timeout_seconds"],
        wait_seconds=max(row["wait_seconds"], 0.0),
    )


def _outcome_arrays(outcomes: Sequence[Outcome]) -> list[list[Any]]:
    """The eight parameter arrays ($1..$8) of the finish statements, one entry per outcome."""
    return [
        [o.job_id for o in outcomes],
        [o.attempt for o in outcomes],
        [o.status.value for o in outcomes],
        [o.result_json for o in outcomes],
        [o.error_type for o in outcomes],
        [o.error_message for o in outcomes],
        [o.traceback for o in outcomes],
        [o.retry_delay_seconds for o in outcomes],
    ]


async def claim(conn: asyncpg.Connection, worker_id: str, spec: ClaimSpec) -> list[ClaimedJob]:
    """Claim up to ``spec.limit`` due ``todo`` jobs of ``spec.queue`` and ``spec.tasks`` for
    ``worker_id``: each becomes ``in_progress``, its attempt counted, its lease running
    ``spec.lease_seconds`` from the database's now.

    Returns:
        the claimed jobs, in claim order (priority, run_at, id).
    """
    if spec.tasks is None:
        rows = await conn.fetch(
            sql.CLAIM_ANY_TASK, spec.queue, spec.limit, worker_id, spec.lease_seconds
        )
    else:
        rows = await conn.fetch(
            sql.CLAIM, spec.queue, spec.limit, worker_id, spec.lease_seconds, list(spec.tasks)
        )
    return [_claimed(row) for row in rows]


async def finish(
    conn: asyncpg.Connection,
    worker_id: str,
    outcomes: Sequence[Outcome],
    claim_spec: ClaimSpec | None = None,
) -> FinishResult:
    """Write a batch of attempt outcomes with one fenced statement, and claim with it when
    ``claim_spec`` is given (one round trip, one transaction).

    At most :data:`MAX_FINISH_BATCH` outcomes. An outcome whose attempt no longer holds its
    job's lease (rescued, claimed again, cancelled, deleted) writes nothing and comes back in
    ``refused``, with the job's state now (a second statement, only then).

    Returns:
        see :class:`FinishResult`.
    """
    arrays = _outcome_arrays(outcomes)
    if claim_spec is None:
        rows = await conn.fetch(sql.FINISH, *arrays, worker_id)
        claimed: list[ClaimedJob] = []
        written_rows = rows
    else:
        rows = await conn.fetch(
            sql.FINISH_AND_CLAIM,
            *arrays,
            worker_id,
            claim_spec.queue,
            claim_spec.limit,
            claim_spec.lease_seconds,
            list(claim_spec.tasks or ()),
        )
        claimed = [_claimed(row) for row in rows if row["claimed"]]
        written_rows = [row for row in rows if not row["claimed"]]
    written = {(row["id"], row["attempts"]): JobStatus(row["status"]) for row in written_rows}
    refused = [o.key for o in outcomes if o.key not in written]
    details: dict[int, asyncpg.Record] = {}
    if refused:
        ids = list({job_id for job_id, _ in refused})
        details = {row["id"]: row for row in await conn.fetch(sql.REFUSED_DETAILS, ids)}
    labels = (
        {}
        if claim_spec is not None
        else {(row["id"], row["attempts"]): (row["queue"], row["task"]) for row in written_rows}
    )
    return FinishResult(
        written=written,
        labels=labels,
        refused=[_refused(key, details.get(key[0])) for key in refused],
        claimed=claimed,
    )


def _refused(key: AttemptKey, row: asyncpg.Record | None) -> Refused:
    if row is None:
        return Refused(key, None, None)
    return Refused(key, row["attempts"], JobStatus(row["status"]))


async def heartbeat(
    conn: asyncpg.Connection, worker_id: str, keys: Sequence[AttemptKey], lease_seconds: float
) -> HeartbeatResult:
    """Extend the leases of ``keys`` with one statement, and find the ones that are lost.

    A lease that has expired is lost even if nobody rescued the job yet: it is not revived.
    A row locked by a concurrent write (this process finishing it, a cancel, a rescue) is
    neither extended nor reported lost this time.

    Returns:
        see :class:`HeartbeatResult`.
    """
    if not keys:
        return HeartbeatResult()
    rows = await conn.fetch(
        sql.HEARTBEAT, [k[0] for k in keys], [k[1] for k in keys], worker_id, lease_seconds
    )
    return HeartbeatResult(
        extended=frozenset((r["id"], r["attempt"]) for r in rows if r["extended"]),
        lost=frozenset((r["id"], r["attempt"]) for r in rows if not r["ours"]),
        cancel_requested=frozenset((r["id"], r["attempt"]) for r in rows if r["cancel_requested"]),
    )


async def release(
    conn: asyncpg.Connection, worker_id: str, keys: Sequence[AttemptKey]
) -> set[AttemptKey]:
    """Put jobs ``worker_id`` holds back to ``todo`` without counting the attempt (shutdown).

    Returns:
        the attempts released (others had lost their lease already).
    """
    if not keys:
        return set()
    rows = await conn.fetch(sql.RELEASE, [k[0] for k in keys], [k[1] for k in keys], worker_id)
    # RETURNING gives the attempts after the release (one less than the attempt released).
    return {(row["id"], row["attempts"] + 1) for row in rows}


async def rescue(conn: asyncpg.Connection, limit: int = RESCUE_BATCH) -> list[Rescued]:
    """Put back up to ``limit`` jobs whose lease expired: to ``todo``, or ``failed`` when their
    attempts are spent, or ``cancelled`` when a cancel was requested; each leaves a history
    row, and the queues that got runnable jobs are NOTIFYed. Idempotent and safe to run from
    every process at once (SKIP LOCKED).
    """
    rows = await conn.fetch(sql.RESCUE, limit)
    return [
        Rescued(
            job_id=row["id"],
            queue=row["queue"],
            task=row["task"],
            attempt=row["attempts"],
            status=JobStatus(row["status"]),
            worker_id=row["worker_id"],
        )
        for row in rows
    ]


class LeaseStore(Protocol):
    """The lease use cases as the in-process coordinator needs them (one worker id)."""

    worker_id: str

    async def claim(self, spec: ClaimSpec) -> list[ClaimedJob]:
        """See :func:`claim`."""
        ...

    async def finish(
        self, outcomes: Sequence[Outcome], claim_spec: ClaimSpec | None
    ) -> FinishResult:
        """See :func:`finish`; raises :class:`OutcomeRejected` when the database refuses the
        batch as data."""
        ...

    async def heartbeat(self, keys: Sequence[AttemptKey], lease_seconds: float) -> HeartbeatResult:
        """See :func:`heartbeat`."""
        ...

    async def release(self, keys: Sequence[AttemptKey]) -> set[AttemptKey]:
        """See :func:`release`."""
        ...

    async def close(self) -> None:
        """Give back held connections."""
        ...


class PostgresLeases:
    """:class:`LeaseStore` on PostgreSQL for one worker id.

    ``claim`` and ``finish`` come from one single-flight caller (the coordinator) and run on
    one held connection: no pool checkout per statement, a warm statement cache. ``heartbeat``
    and ``release`` run concurrently with them, on pooled connections.

    Raises (from every method):
        DatabaseUnavailable: the database cannot be reached; nothing was written.
    """

    def __init__(self, engine: AsyncEngine, worker_id: str) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self._held = HeldConnection(engine)

    async def claim(self, spec: ClaimSpec) -> list[ClaimedJob]:
        """See :func:`claim`."""
        async with self._held.use() as conn:
            return await claim(conn, self.worker_id, spec)

    async def finish(
        self, outcomes: Sequence[Outcome], claim_spec: ClaimSpec | None
    ) -> FinishResult:
        """See :func:`finish`.

        Raises:
            OutcomeRejected: the database refused the batch as data (nothing was written).
            DatabaseUnavailable: the database cannot be reached.
        """
        async with self._held.use() as conn:
            try:
                return await finish(conn, self.worker_id, outcomes, claim_spec)
            except asyncpg.DataError as exc:
                # Raised client-side for a parameter asyncpg cannot encode, and by the server
                # for SQLSTATE class 22 (data exception: out of range, untranslatable, ...).
                raise OutcomeRejected(f"{type(exc).__name__}: {str(exc)[:300]}") from exc

    async def heartbeat(self, keys: Sequence[AttemptKey], lease_seconds: float) -> HeartbeatResult:
        """See :func:`heartbeat`."""
        async with connect(self.engine) as conn:
            return await heartbeat(conn, self.worker_id, keys, lease_seconds)

    async def release(self, keys: Sequence[AttemptKey]) -> set[AttemptKey]:
        """See :func:`release`."""
        async with connect(self.engine) as conn:
            return await release(conn, self.worker_id, keys)

    async def close(self) -> None:
        """Give the held connection back to the pool."""
        await self._held.close()
