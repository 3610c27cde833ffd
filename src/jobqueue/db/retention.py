"""Retention: delete finished jobs older than an age, one bounded batch per transaction.

SQLAlchemy Core on the tables (DESIGN.md: retention is not a measured hot path). Each batch is
one short transaction that first takes a transaction-level advisory lock without waiting
(``pg_try_advisory_xact_lock``, PostgreSQL manual, "Advisory Locks"): while one process prunes,
another's batch finds the lock taken and skips its round, and the lock ends with the batch's
commit, so it also holds behind pgbouncer in transaction mode (a session lock would not).

The batch takes the oldest finished jobs of one status through ``ix_jobs_finished`` with
``FOR UPDATE SKIP LOCKED`` (a row some other statement holds is left for the next round, never
waited on), and deletes them; their ``job_attempts`` rows go with them (``ON DELETE CASCADE``).
Claims never wait on it: they lock ``todo`` rows only.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from jobqueue.db.tables import jobs
from jobqueue.jobs import JobStatus

PRUNE_LOCK_KEY: Final = zlib.crc32(b"jobqueue.pruner")
"""The advisory lock key of the pruner (a fixed 32-bit number, distinct from the migration's)."""

PRUNABLE: Final = (JobStatus.DONE, JobStatus.CANCELLED, JobStatus.FAILED)
"""The statuses the pruner deletes; ``todo`` and ``in_progress`` jobs are never pruned."""


async def prune_batch(
    conn: AsyncConnection, status: JobStatus, older_than_seconds: float, limit: int
) -> dict[str, int] | None:
    """Delete up to ``limit`` jobs of ``status`` finished more than ``older_than_seconds`` ago
    (database clock), oldest first. Run it in a transaction of its own (``engine.write``).

    Returns:
        the deleted jobs counted per queue (``{}`` when none were due), or None when another
        process holds the pruner's lock (nothing was deleted).

    Raises:
        ValueError: ``status`` is not a final status, or ``older_than_seconds`` or ``limit``
            is not positive.
    """
    if status not in PRUNABLE:
        raise ValueError(f"only finished jobs are pruned, not {status.value!r}")
    if older_than_seconds <= 0 or limit <= 0:
        raise ValueError("older_than_seconds and limit must be positive")
    locked = await conn.scalar(select(func.pg_try_advisory_xact_lock(PRUNE_LOCK_KEY)))
    if not locked:
        return None
    cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds)
    # The status is rendered into the SQL (an enum value, never user text) so that the planner
    # can use the partial index ix_jobs_finished; a generic plan for "status = $1" could not.
    status_value: Any = bindparam("status", status.value, literal_execute=True)
    due = (
        select(jobs.c.id)
        .where(jobs.c.status == status_value, jobs.c.finished_at < cutoff)
        .order_by(jobs.c.finished_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    deleted = (
        jobs.delete().where(jobs.c.id.in_(due.scalar_subquery())).returning(jobs.c.queue)
    ).cte("deleted")
    rows = await conn.execute(
        select(deleted.c.queue, func.count().label("jobs")).group_by(deleted.c.queue)
    )
    return {queue: int(count) for queue, count in rows}
