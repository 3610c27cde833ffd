"""Every SQL statement jobqueue runs, as hand-written SQL on an asyncpg connection.

Each function takes the connection (and so the transaction) from its caller: the edge (one
request, one worker step) owns the transaction; nothing here commits. Hot paths handle a batch
per statement (``unnest`` of arrays) so a batch costs one round trip.

Every write that moves a job out of ``in_progress`` is fenced by the attempt it belongs to:
``WHERE id = … AND status = 'in_progress' AND worker_id = … AND attempts = …``. A worker whose
lease expired and whose job was claimed again therefore writes zero rows and never overwrites
the newer attempt (River's guarded state writes).

Times come from the database clock (``now()``), never the process's: replicas' clocks drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from jobqueue.jobs import ClaimedJob, Job, JobStatus, NewJob, Outcome

NOTIFY_CHANNEL = "jobqueue_jobs"
"""LISTEN/NOTIFY channel; the payload is a comma-separated list of queue names."""

_JOB_COLUMNS = (
    "id, queue, task, payload, description, status, priority, attempts, max_attempts, rescues,"
    " run_at, created_at, started_at, finished_at, lease_expires_at, worker_id, result, error,"
    " idempotency_key, timeout_seconds"
)

_INSERT = f"""
INSERT INTO jobs (queue, task, payload, description, priority, max_attempts, timeout_seconds,
                  run_at, idempotency_key)
SELECT u.queue, u.task, u.payload::jsonb, u.description, u.priority, u.max_attempts,
       u.timeout_seconds, now() + make_interval(secs => u.delay_seconds), u.idempotency_key
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::float8[],
            $8::float8[], $9::text[])
     WITH ORDINALITY AS u(queue, task, payload, description, priority, max_attempts,
                          timeout_seconds, delay_seconds, idempotency_key, n)
ORDER BY u.n
RETURNING {_JOB_COLUMNS}
"""

# Higher priority first, then the earliest run_at, then the oldest id; ix_jobs_claim serves it.
_CLAIM = """
WITH next AS (
    SELECT id FROM jobs
    WHERE status = 'todo' AND queue = $1 AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET status = 'in_progress', attempts = j.attempts + 1, worker_id = $3, started_at = now(),
    finished_at = NULL, lease_expires_at = now() + make_interval(secs => $4)
FROM next
WHERE j.id = next.id
RETURNING j.id, j.queue, j.task, j.payload, j.attempts, j.max_attempts, j.timeout_seconds
"""

_FINISH = """
UPDATE jobs AS j
SET status = u.status,
    result = u.result::jsonb,
    error = u.error,
    finished_at = CASE WHEN u.status = 'todo' THEN NULL ELSE now() END,
    run_at = CASE WHEN u.status = 'todo' THEN now() + make_interval(secs => u.delay_seconds)
                  ELSE j.run_at END,
    worker_id = CASE WHEN u.status = 'todo' THEN NULL ELSE j.worker_id END,
    lease_expires_at = NULL
FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::float8[])
     AS u(id, attempt, status, result, error, delay_seconds)
WHERE j.id = u.id AND j.status = 'in_progress' AND j.worker_id = $7 AND j.attempts = u.attempt
RETURNING j.id
"""

_HEARTBEAT = """
UPDATE jobs
SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = ANY($1::bigint[]) AND status = 'in_progress' AND worker_id = $2
RETURNING id
"""

# Undo the claim: the attempt did not really run, so it does not count.
_RELEASE = """
UPDATE jobs AS j
SET status = 'todo', attempts = j.attempts - 1, worker_id = NULL, started_at = NULL,
    lease_expires_at = NULL, run_at = now()
FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt)
WHERE j.id = u.id AND j.status = 'in_progress' AND j.worker_id = $3 AND j.attempts = u.attempt
RETURNING j.id
"""

# A rescue counts as an attempt (the claim already counted it); a job that has used all its
# attempts this way ends failed, so a job that kills its worker every time cannot loop for ever.
_RESCUE = """
UPDATE jobs AS j
SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'todo' END,
    rescues = j.rescues + 1,
    error = 'lease expired during attempt ' || j.attempts || ' on worker '
            || coalesce(j.worker_id, '?') || ' (the process died or stalled)',
    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
    worker_id = NULL, lease_expires_at = NULL, run_at = now()
FROM (
    SELECT id FROM jobs
    WHERE status = 'in_progress' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
) AS expired
WHERE j.id = expired.id AND j.status = 'in_progress'
RETURNING j.id, j.queue, j.task, j.status, j.attempts
"""


def _job(record: asyncpg.Record) -> Job:
    values: dict[str, Any] = dict(record)
    values["status"] = JobStatus(values["status"])
    return Job(**values)


async def insert_jobs(conn: asyncpg.Connection, new_jobs: Sequence[NewJob]) -> list[Job]:
    """Insert jobs with one statement, in the given order.

    Args:
        conn: a connection, usually inside the caller's transaction.
        new_jobs: checked specs; ``payload_json`` is JSON text.

    Returns:
        the stored jobs, in the order of ``new_jobs``.

    Raises:
        asyncpg.UniqueViolationError: when an idempotency key is already taken.
    """
    rows = await conn.fetch(
        _INSERT,
        [j.queue for j in new_jobs],
        [j.task for j in new_jobs],
        [j.payload_json for j in new_jobs],
        [j.description for j in new_jobs],
        [j.priority for j in new_jobs],
        [j.max_attempts for j in new_jobs],
        [j.timeout_seconds for j in new_jobs],
        [j.delay_seconds for j in new_jobs],
        [j.idempotency_key for j in new_jobs],
    )
    return [_job(row) for row in rows]


async def notify(conn: asyncpg.Connection, queues: Sequence[str]) -> None:
    """Send one NOTIFY naming ``queues`` (comma-separated) on :data:`NOTIFY_CHANNEL`.

    Inside a transaction PostgreSQL delivers it at commit and drops it on rollback (PostgreSQL
    manual, NOTIFY). One per transaction: NOTIFY takes a global lock at commit.
    """
    payload = ",".join(sorted(set(queues)))
    if len(payload.encode()) > 7900:  # NOTIFY payloads are capped at 8000 bytes
        payload = "*"
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)


async def get_job(conn: asyncpg.Connection, job_id: int) -> Job | None:
    """The job with ``job_id``, or None."""
    row = await conn.fetchrow(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = $1", job_id)
    return None if row is None else _job(row)


async def list_jobs(
    conn: asyncpg.Connection,
    *,
    limit: int,
    before_id: int | None = None,
    status: JobStatus | None = None,
    queue: str | None = None,
    task: str | None = None,
) -> list[Job]:
    """Jobs newest first (by id), keyset-paginated: ids below ``before_id``.

    Only the given filters enter the SQL, so each combination is its own prepared statement
    with its own plan (``ix_jobs_status_id`` serves a status filter, the primary key the rest).

    Args:
        limit: at most this many rows (the caller caps it).
        before_id: the last id of the previous page, or None for the first page.
        status, queue, task: equality filters, None for "any".
    """
    filters = {
        "id <": before_id,
        "status =": None if status is None else str(status),
        "queue =": queue,
        "task =": task,
    }
    clauses: list[str] = []
    args: list[Any] = []
    for condition, value in filters.items():
        if value is not None:
            args.append(value)
            clauses.append(f"{condition} ${len(args)}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    args.append(limit)
    sql = f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY id DESC LIMIT ${len(args)}"
    return [_job(row) for row in await conn.fetch(sql, *args)]


async def claim(
    conn: asyncpg.Connection,
    *,
    queue: str,
    limit: int,
    worker_id: str,
    lease_seconds: float,
) -> list[ClaimedJob]:
    """Claim up to ``limit`` due ``todo`` jobs of ``queue`` for ``worker_id``.

    One queue per statement, so the scan walks ``ix_jobs_claim`` in order and stops after
    ``limit`` entries however many jobs wait (``queue = ANY(…)`` would sort them all). One
    statement: ``SELECT … FOR UPDATE SKIP LOCKED`` picks rows no other claimer holds
    (PostgreSQL manual, "The Locking Clause"), and the UPDATE marks them ``in_progress``,
    counts the attempt and sets the lease to ``now() + lease_seconds``.
    """
    rows = await conn.fetch(_CLAIM, queue, limit, worker_id, lease_seconds)
    return [
        ClaimedJob(
            id=row["id"],
            queue=row["queue"],
            task=row["task"],
            payload=row["payload"],
            attempt=row["attempts"],
            max_attempts=row["max_attempts"],
            timeout_seconds=row["timeout_seconds"],
        )
        for row in rows
    ]


async def finish(conn: asyncpg.Connection, outcomes: Sequence[Outcome], worker_id: str) -> set[int]:
    """Write a batch of attempt outcomes with one fenced UPDATE.

    Returns:
        the ids written. An id missing from it lost its lease (rescued, claimed again or
        cancelled); its outcome was dropped, as it must be.
    """
    rows = await conn.fetch(
        _FINISH,
        [o.job_id for o in outcomes],
        [o.attempt for o in outcomes],
        [str(o.status) for o in outcomes],
        [o.result_json for o in outcomes],
        [o.error for o in outcomes],
        [o.retry_delay_seconds for o in outcomes],
        worker_id,
    )
    return {row["id"] for row in rows}


async def heartbeat(
    conn: asyncpg.Connection, job_ids: Sequence[int], worker_id: str, lease_seconds: float
) -> set[int]:
    """Extend the leases of all jobs ``worker_id`` holds with one UPDATE.

    Returns:
        the ids whose lease was extended; the rest are no longer this worker's.
    """
    rows = await conn.fetch(_HEARTBEAT, list(job_ids), worker_id, lease_seconds)
    return {row["id"] for row in rows}


async def release(
    conn: asyncpg.Connection, held: Sequence[tuple[int, int]], worker_id: str
) -> set[int]:
    """Put jobs this worker holds back to ``todo`` without counting the attempt (shutdown).

    Args:
        held: ``(job_id, attempt)`` pairs.

    Returns:
        the ids released.
    """
    rows = await conn.fetch(
        _RELEASE, [job_id for job_id, _ in held], [attempt for _, attempt in held], worker_id
    )
    return {row["id"] for row in rows}


async def rescue(conn: asyncpg.Connection, limit: int = 1000) -> list[asyncpg.Record]:
    """Return up to ``limit`` jobs whose lease expired to ``todo`` (or ``failed`` when spent).

    Idempotent and safe to run from every process at once (SKIP LOCKED).

    Returns:
        records with ``id, queue, task, status, attempts`` of the rescued jobs.
    """
    return await conn.fetch(_RESCUE, limit)


async def alembic_revision(conn: asyncpg.Connection) -> str | None:
    """The database's alembic revision, or None when it was never migrated."""
    exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    if not exists:
        return None
    value: str | None = await conn.fetchval("SELECT version_num FROM alembic_version LIMIT 1")
    return value
