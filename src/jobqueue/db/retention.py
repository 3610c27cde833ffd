"""Retention: delete finished jobs older than their status's age, walking the table in id order
one bounded window per transaction.

No index serves this on purpose: an index over finished rows (``(status, finished_at)``, as
River has) costs every finish an index insert, measured at about 15 % of the drain rate
(docs/performance.md). Instead a round walks the primary key from the lowest id, a window of
``window`` rows at a time: ids grow with ``created_at``, and a job cannot finish before it was
created, so the due rows are at the low end, and the walk stops at the first window holding a
row created after the youngest cutoff (no later row can be due). What a round reads beyond the
due rows is the rows created before that cutoff that are not due yet (still active, or of a
status kept longer): few, in a queue whose rows turn over.

Each window is one short transaction that first takes a transaction-level advisory lock without
waiting (``pg_try_advisory_xact_lock``, PostgreSQL manual, "Advisory Locks"): while one process
prunes, another's finds the lock taken and skips its round; the lock ends with the commit, so it
also holds behind pgbouncer in transaction mode (a session lock would not). Due rows are locked
``FOR UPDATE SKIP LOCKED`` (a row some other statement holds is left for the next round) and
deleted with their ``job_attempts`` rows (``ON DELETE CASCADE``). Claims never wait on it: they
lock ``todo`` rows only.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from jobqueue.jobs import JobStatus

PRUNE_LOCK_KEY: Final = zlib.crc32(b"jobqueue.pruner")
"""The advisory lock key of the pruner (a fixed 32-bit number, distinct from the migration's)."""

PRUNABLE: Final = (JobStatus.DONE, JobStatus.CANCELLED, JobStatus.FAILED)
"""The statuses the pruner deletes; ``todo`` and ``in_progress`` jobs are never pruned."""

_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")

_WINDOW = text("""
SELECT max(id) AS last_id, max(created_at) AS last_created, count(*) AS rows
FROM (SELECT id, created_at FROM jobs WHERE id > CAST(:after AS bigint) ORDER BY id
      LIMIT CAST(:window AS int)) AS w
""")

# Ages are seconds; 0 keeps that status (the clause is false). Status values are our enum's.
_DELETE = text("""
WITH due AS (
    SELECT id FROM jobs
    WHERE id > CAST(:after AS bigint) AND id <= CAST(:last AS bigint)
      AND ((status = 'done' AND CAST(:done AS float8) > 0
            AND finished_at < now() - make_interval(secs => CAST(:done AS float8)))
        OR (status = 'cancelled' AND CAST(:cancelled AS float8) > 0
            AND finished_at < now() - make_interval(secs => CAST(:cancelled AS float8)))
        OR (status = 'failed' AND CAST(:failed AS float8) > 0
            AND finished_at < now() - make_interval(secs => CAST(:failed AS float8))))
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM jobs AS j USING due WHERE j.id = due.id RETURNING j.queue, j.status
)
SELECT queue, status, count(*) AS jobs FROM gone GROUP BY queue, status
""")

_NOW = text("SELECT now()")


@dataclass(frozen=True, slots=True)
class PrunedWindow:
    """What one window did.

    Attributes:
        deleted: jobs deleted per ``(queue, status)``.
        last_id: the highest id of the window (the next window starts after it); None when
            the window was empty (the end of the table).
        done: True when no later row can be due: the window was the table's last, or it held
            a row created after the youngest cutoff.
    """

    deleted: dict[tuple[str, JobStatus], int]
    last_id: int | None
    done: bool


async def prune_window(
    conn: AsyncConnection, after: int, ages: Mapping[JobStatus, float], window: int
) -> PrunedWindow | None:
    """Delete the due jobs among the ``window`` rows after id ``after``. Run it in a transaction
    of its own (``engine.write``).

    Args:
        after: the last id of the previous window (0 at the start of a round).
        ages: seconds each final status is kept, at least one positive (0 or missing: kept for
            ever), as :class:`~jobqueue.maintenance.Pruner` checked them.
        window: rows read per window.

    Returns:
        what the window did, or None when another process holds the pruner's lock (nothing was
        read or deleted).
    """
    kept = [age for age in ages.values() if age > 0]
    if not (await conn.execute(_LOCK, {"key": PRUNE_LOCK_KEY})).scalar():
        return None
    now: datetime = (await conn.execute(_NOW)).scalar_one()
    bounds = (await conn.execute(_WINDOW, {"after": after, "window": window})).one()
    if bounds.last_id is None:
        return PrunedWindow({}, None, True)
    parameters = {
        "after": after,
        "last": bounds.last_id,
        "done": float(ages.get(JobStatus.DONE, 0.0)),
        "cancelled": float(ages.get(JobStatus.CANCELLED, 0.0)),
        "failed": float(ages.get(JobStatus.FAILED, 0.0)),
    }
    rows = await conn.execute(_DELETE, parameters)
    deleted = {(row.queue, JobStatus(row.status)): int(row.jobs) for row in rows}
    youngest_cutoff = now.timestamp() - min(kept)
    done = bounds.rows < window or bounds.last_created.timestamp() > youngest_cutoff
    return PrunedWindow(deleted, bounds.last_id, done)


# --- Dead rows: the claim index's upkeep (maintenance/vacuum.py) -----------------------------

JOBS_DEAD_ROWS: Final = text(
    "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE relid = 'jobs'::regclass"
)
"""The ``jobs`` table's dead and live row estimates from the statistics collector (PostgreSQL
manual, "pg_stat_all_tables"): backends report them at most once a second while busy."""

VACUUM_JOBS: Final = "VACUUM (SKIP_LOCKED) jobs"
"""``SKIP_LOCKED``: when another VACUUM of the table (autovacuum's, or another process's) runs,
this one is skipped at once instead of waiting for it (PostgreSQL manual, "VACUUM")."""


async def jobs_dead_rows(conn: AsyncConnection) -> tuple[int, int]:
    """``(dead, live)`` row estimates of ``jobs`` (0 for a table the collector has not seen)."""
    row = (await conn.execute(JOBS_DEAD_ROWS)).one_or_none()
    return (0, 0) if row is None else (int(row.n_dead_tup or 0), int(row.n_live_tup or 0))
