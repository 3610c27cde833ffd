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

from jobqueue.jobs import Attempt, ClaimedJob, Job, JobStatus, NewJob, Outcome

NOTIFY_CHANNEL = "jobqueue"
"""The LISTEN/NOTIFY channel. A payload is ``<kind>:<items>``, items comma-separated:

- ``q:default,emails`` jobs became runnable on these queues (``q:*``: on any queue)
- ``f:12,13``           these jobs reached a final status (wakes ``?wait_seconds`` readers)
- ``c:12``              cancellation was requested for these running jobs
"""

NOTIFY_QUEUES = "q"
NOTIFY_FINISHED = "f"
NOTIFY_CANCEL = "c"
# PostgreSQL caps a payload at 8000 bytes; stay clear of it.
MAX_NOTIFY_BYTES = 7900

_JOB_COLUMNS = (
    "id, queue, task, payload, description, status, priority, attempts, max_attempts, rescues,"
    " run_at, created_at, started_at, finished_at, lease_expires_at, worker_id, result, error,"
    " idempotency_key, timeout_seconds, cancel_requested_at"
)

_INSERT_ROWS = """
INSERT INTO jobs (queue, task, payload, description, priority, max_attempts, timeout_seconds,
                  run_at, idempotency_key)
SELECT u.queue, u.task, u.payload::jsonb, u.description, u.priority, u.max_attempts,
       u.timeout_seconds, coalesce(u.run_at, now() + make_interval(secs => u.delay_seconds)),
       u.idempotency_key
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::float8[],
            $8::float8[], $9::timestamptz[], $10::text[])
     WITH ORDINALITY AS u(queue, task, payload, description, priority, max_attempts,
                          timeout_seconds, delay_seconds, run_at, idempotency_key, n)
ORDER BY u.n
-- A taken key inserts nothing; the service then reads the existing job. Concurrent inserts of
-- one key wait on the unique index until the first commits (PostgreSQL manual, INSERT,
-- "ON CONFLICT Clause"), so exactly one row is created however many requests race.
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
"""

_INSERT = f"{_INSERT_ROWS}RETURNING {_JOB_COLUMNS}"


def _insert_and_notify(columns: str, returning: str) -> str:
    """The INSERT and its NOTIFY in one statement, giving ``columns`` of the new rows
    (``returning`` must include them and ``queue``).

    One statement is one implicit transaction: no BEGIN/COMMIT round trips, and the NOTIFY is
    delivered at its commit. Identity values follow the insert order, so ORDER BY id gives the
    input order back.
    """
    return f"""
WITH inserted AS ({_INSERT_ROWS}RETURNING {returning})
SELECT {columns},
       (SELECT pg_notify('{NOTIFY_CHANNEL}',
                         CASE WHEN length(q.names) > {MAX_NOTIFY_BYTES - 2}
                              THEN '{NOTIFY_QUEUES}:*' ELSE '{NOTIFY_QUEUES}:' || q.names END)
        FROM (SELECT string_agg(DISTINCT queue, ',') AS names FROM inserted) AS q) AS notified
FROM inserted
ORDER BY id
"""


_INSERT_AND_NOTIFY = _insert_and_notify(_JOB_COLUMNS, _JOB_COLUMNS)
_INSERT_IDS_AND_NOTIFY = _insert_and_notify("id", "id, queue")

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
RETURNING j.id, j.queue, j.task, j.payload, j.attempts, j.max_attempts, j.timeout_seconds,
          extract(epoch FROM now() - j.run_at)::float8 AS wait_seconds
"""

# One round trip per batch: the fenced UPDATE, the attempt-history rows of the attempts that
# did not succeed, and one NOTIFY naming the jobs that reached a final status (the scalar
# subquery runs once, and only when some row was written). A retry of a job whose cancellation
# was requested ends it cancelled instead.
_FINISH_CTES = """
u AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::float8[])
        AS u(id, attempt, status, result, error_type, error_message, traceback, delay_seconds)
), written AS (
    UPDATE jobs AS j
    SET status = CASE WHEN u.status = 'todo' AND j.cancel_requested_at IS NOT NULL
                      THEN 'cancelled' ELSE u.status END,
        result = u.result::jsonb,
        error = CASE WHEN u.error_type IS NULL THEN NULL
                     ELSE u.error_type || ': ' || u.error_message END,
        finished_at = CASE WHEN u.status = 'todo' AND j.cancel_requested_at IS NULL THEN NULL
                           ELSE now() END,
        run_at = CASE WHEN u.status = 'todo' AND j.cancel_requested_at IS NULL
                      THEN now() + make_interval(secs => u.delay_seconds) ELSE j.run_at END,
        worker_id = CASE WHEN u.status = 'todo' AND j.cancel_requested_at IS NULL THEN NULL
                         ELSE j.worker_id END,
        lease_expires_at = NULL
    FROM u
    WHERE j.id = u.id AND j.status = 'in_progress' AND j.worker_id = $9
      AND j.attempts = u.attempt
    RETURNING j.id, j.status, j.started_at
), history AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error_type,
                              error_message, traceback)
    SELECT u.id, u.attempt, $9, w.started_at,
           CASE w.status WHEN 'todo' THEN 'retried' ELSE w.status END,
           u.error_type, u.error_message, u.traceback
    FROM written AS w JOIN u ON u.id = w.id
    WHERE w.status <> 'done'
)"""

# Runs once (an uncorrelated subquery), and only when some row was written.
_NOTIFY_FINISHED = f"""
(SELECT count(pg_notify('{NOTIFY_CHANNEL}', '{NOTIFY_FINISHED}:' || s.ids))
 FROM (SELECT string_agg(f.id::text, ',') AS ids FROM written AS f
       WHERE f.status IN ('done', 'failed', 'cancelled')) AS s
 WHERE s.ids IS NOT NULL)"""

_FINISH = f"""
WITH {_FINISH_CTES}
SELECT w.id, w.status, {_NOTIFY_FINISHED} AS notified
FROM written AS w
"""

# The completer's usual statement: write a batch of outcomes and claim jobs for the slots they
# freed, in one round trip. Both UPDATEs see the same snapshot and touch disjoint rows (the
# written ones are in_progress, the claimed ones todo). $10 queue, $11 limit, $12 lease.
_FINISH_AND_CLAIM = f"""
WITH {_FINISH_CTES}, next AS (
    SELECT id FROM jobs
    WHERE status = 'todo' AND queue = $10 AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT $11
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs AS c
    SET status = 'in_progress', attempts = c.attempts + 1, worker_id = $9, started_at = now(),
        finished_at = NULL, lease_expires_at = now() + make_interval(secs => $12)
    FROM next
    WHERE c.id = next.id
    RETURNING c.id, c.queue, c.task, c.payload, c.attempts, c.max_attempts, c.timeout_seconds,
              extract(epoch FROM now() - c.run_at)::float8 AS wait_seconds
)
SELECT true AS claimed, c.id, NULL AS status, c.queue, c.task, c.payload, c.attempts,
       c.max_attempts, c.timeout_seconds, c.wait_seconds, NULL::bigint AS notified
FROM claimed AS c
UNION ALL
SELECT false, w.id, w.status, NULL, NULL, NULL, NULL, NULL, NULL, NULL, {_NOTIFY_FINISHED}
FROM written AS w
"""

# SKIP LOCKED: a row locked right now is being written by this process's completer (or by a
# cancel or a rescue); it needs no lease extension, and waiting for it could deadlock with the
# completer's multi-row UPDATE, which locks the same rows in another order.
_HEARTBEAT = """
WITH mine AS (
    SELECT id FROM jobs
    WHERE id = ANY($1::bigint[]) AND status = 'in_progress' AND worker_id = $2
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET lease_expires_at = now() + make_interval(secs => $3)
FROM mine
WHERE j.id = mine.id
RETURNING j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested
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
# A job whose cancellation was requested ends cancelled. Each rescue leaves a history row.
_LEASE_EXPIRED = (
    "'lease expired during attempt ' || j.attempts || ' on worker '"
    " || coalesce(expired.worker_id, '?') || ' (the process died or stalled)'"
)

_RESCUE = f"""
WITH rescued AS (
    UPDATE jobs AS j
    SET status = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                      WHEN j.attempts >= j.max_attempts THEN 'failed'
                      ELSE 'todo' END,
        rescues = j.rescues + 1,
        error = 'LeaseExpired: ' || {_LEASE_EXPIRED},
        finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL
                             OR j.attempts >= j.max_attempts THEN now() END,
        worker_id = NULL, lease_expires_at = NULL, run_at = now()
    FROM (
        SELECT id, worker_id, started_at FROM jobs
        WHERE status = 'in_progress' AND lease_expires_at < now()
        ORDER BY lease_expires_at
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ) AS expired
    WHERE j.id = expired.id AND j.status = 'in_progress'
    RETURNING j.id, j.queue, j.task, j.status, j.attempts, expired.worker_id,
              expired.started_at, {_LEASE_EXPIRED} AS message
), history AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error_type,
                              error_message)
    SELECT r.id, r.attempts, r.worker_id, r.started_at,
           CASE WHEN r.status = 'cancelled' THEN 'cancelled' ELSE 'rescued' END,
           'LeaseExpired', r.message
    FROM rescued AS r
)
SELECT id, queue, task, status, attempts FROM rescued
"""

_RETRY = f"""
UPDATE jobs
SET status = 'todo', attempts = 0, rescues = 0, run_at = now(), started_at = NULL,
    finished_at = NULL, worker_id = NULL, lease_expires_at = NULL, result = NULL, error = NULL,
    cancel_requested_at = NULL
WHERE id = $1 AND status IN ('failed', 'cancelled')
RETURNING {_JOB_COLUMNS}
"""

_CANCEL_TODO = f"""
UPDATE jobs
SET status = 'cancelled', finished_at = now(), cancel_requested_at = now()
WHERE id = $1 AND status = 'todo'
RETURNING {_JOB_COLUMNS}
"""

_REQUEST_CANCEL = f"""
UPDATE jobs
SET cancel_requested_at = coalesce(cancel_requested_at, now())
WHERE id = $1 AND status = 'in_progress'
RETURNING {_JOB_COLUMNS}
"""

_ATTEMPTS = """
SELECT attempt, worker_id, started_at, finished_at, outcome, error_type, error_message, traceback
FROM job_attempts WHERE job_id = $1 ORDER BY id
"""


def _job(record: asyncpg.Record) -> Job:
    values: dict[str, Any] = dict(record)
    values.pop("notified", None)
    values["status"] = JobStatus(values["status"])
    return Job(**values)


async def insert_jobs(
    conn: asyncpg.Connection, new_jobs: Sequence[NewJob], *, notify: bool = False
) -> list[Job]:
    """Insert jobs with one statement, in the given order; a job whose idempotency key is
    already taken (by a stored job or an earlier one of ``new_jobs``) is skipped.

    Args:
        conn: a connection, usually inside the caller's transaction.
        new_jobs: checked specs; ``payload_json`` is JSON text.
        notify: also send the "jobs became runnable" NOTIFY for their queues in the same
            statement (one round trip; use it outside a transaction, where the statement is its
            own transaction).

    Returns:
        the jobs inserted, in the order of ``new_jobs`` (skipped ones left out).
    """
    rows = await conn.fetch(_INSERT_AND_NOTIFY if notify else _INSERT, *_new_job_arrays(new_jobs))
    return [_job(row) for row in rows]


async def insert_job_ids(conn: asyncpg.Connection, new_jobs: Sequence[NewJob]) -> list[int]:
    """Insert jobs (the service sends none with an idempotency key here) and NOTIFY their
    queues, in one statement.

    The lean form of :func:`insert_jobs` for batches: only the new ids come back.

    Returns:
        the new ids, in the order of ``new_jobs``.
    """
    rows = await conn.fetch(_INSERT_IDS_AND_NOTIFY, *_new_job_arrays(new_jobs))
    return [row[0] for row in rows]


def _new_job_arrays(new_jobs: Sequence[NewJob]) -> list[list[Any]]:
    """The ten parameter arrays ($1..$10) of the insert statements, one entry per job."""
    return [
        [j.queue for j in new_jobs],
        [j.task for j in new_jobs],
        [j.payload_json for j in new_jobs],
        [j.description for j in new_jobs],
        [j.priority for j in new_jobs],
        [j.max_attempts for j in new_jobs],
        [j.timeout_seconds for j in new_jobs],
        [j.delay_seconds for j in new_jobs],
        [j.run_at for j in new_jobs],
        [j.idempotency_key for j in new_jobs],
    ]


async def jobs_by_idempotency_key(conn: asyncpg.Connection, keys: Sequence[str]) -> list[Job]:
    """The stored jobs holding any of ``keys`` (served by ``uq_jobs_idempotency_key``)."""
    rows = await conn.fetch(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE idempotency_key = ANY($1::text[])", list(keys)
    )
    return [_job(row) for row in rows]


async def notify(conn: asyncpg.Connection, kind: str, items: Sequence[object]) -> None:
    """Send one NOTIFY ``<kind>:<items>`` on :data:`NOTIFY_CHANNEL` (see its docstring).

    Inside a transaction PostgreSQL delivers it at commit and drops it on rollback (PostgreSQL
    manual, NOTIFY). Send at most one per transaction: NOTIFY takes a global lock at commit.
    A list too long for one payload becomes ``<kind>:*`` ("all of them: check").
    """
    payload = f"{kind}:{','.join(sorted({str(item) for item in items}))}"
    if len(payload.encode()) > MAX_NOTIFY_BYTES:
        payload = f"{kind}:*"
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
    with its own plan (``ix_jobs_status_id`` serves failed/cancelled, the primary key the rest).

    Args:
        limit: at most this many rows (the caller caps it).
        before_id: the last id of the previous page, or None for the first page.
        status, queue, task: equality filters, None for "any".
    """
    sql, args = page_query(
        _JOB_COLUMNS, limit=limit, before_id=before_id, status=status, queue=queue, task=task
    )
    return [_job(row) for row in await conn.fetch(sql, *args)]


def page_query(
    columns: str,
    *,
    limit: int,
    before_id: int | None = None,
    status: JobStatus | None = None,
    queue: str | None = None,
    task: str | None = None,
    extra: tuple[str, Any] | None = None,
) -> tuple[str, list[Any]]:
    """The SQL and arguments of one page of ``jobs``, newest first, keyset-paginated.

    Only the given filters enter the SQL, so each combination is its own prepared statement with
    its own plan. Shared by :func:`list_jobs` and the dashboard's search.

    Args:
        columns: the select list.
        limit, before_id, status, queue, task: as :func:`list_jobs`.
        extra: one more condition, ``("description ILIKE {} ESCAPE '\\'", value)``: ``{}``
            is replaced by the value's placeholder.

    Returns:
        ``(sql, args)`` for ``conn.fetch(sql, *args)``.
    """
    clauses: list[str] = []
    args: list[Any] = []
    if status is not None:
        # A literal (from the enum, never user text): a partial index needs the planner to see
        # the value, which a generic plan for "status = $1" would hide.
        clauses.append(f"status = '{JobStatus(status).value}'")
    for condition, value in (("id <", before_id), ("queue =", queue), ("task =", task)):
        if value is not None:
            args.append(value)
            clauses.append(f"{condition} ${len(args)}")
    if extra is not None:
        args.append(extra[1])
        clauses.append(extra[0].format(f"${len(args)}"))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    args.append(limit)
    return f"SELECT {columns} FROM jobs {where} ORDER BY id DESC LIMIT ${len(args)}", args


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
    return [_claimed(row) for row in rows]


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


async def finish(
    conn: asyncpg.Connection, outcomes: Sequence[Outcome], worker_id: str
) -> dict[int, str]:
    """Write a batch of attempt outcomes with one fenced statement (see ``_FINISH``).

    Keep batches at or under 400 outcomes: the NOTIFY naming the finished ids must fit in
    8000 bytes.

    Returns:
        ``{id: status written}`` (a retry is ``todo``; a retry of a job whose cancel was
        requested is ``cancelled``). An id missing from it lost its lease (rescued, claimed
        again or cancelled); its outcome was dropped, as it must be.
    """
    rows = await conn.fetch(_FINISH, *_outcome_arrays(outcomes), worker_id)
    return {row["id"]: row["status"] for row in rows}


def _outcome_arrays(outcomes: Sequence[Outcome]) -> list[list[Any]]:
    """The eight parameter arrays ($1..$8) of the finish statements, one entry per outcome."""
    return [
        [o.job_id for o in outcomes],
        [o.attempt for o in outcomes],
        [str(o.status) for o in outcomes],
        [o.result_json for o in outcomes],
        [o.error_type for o in outcomes],
        [o.error_message for o in outcomes],
        [o.traceback for o in outcomes],
        [o.retry_delay_seconds for o in outcomes],
    ]


async def finish_and_claim(
    conn: asyncpg.Connection,
    outcomes: Sequence[Outcome],
    worker_id: str,
    *,
    queue: str,
    limit: int,
    lease_seconds: float,
) -> tuple[dict[int, str], list[ClaimedJob]]:
    """:func:`finish` and :func:`claim` in one statement (one round trip, one transaction).

    Returns:
        ``(written, claimed_jobs)``, as the two functions return them.
    """
    rows = await conn.fetch(
        _FINISH_AND_CLAIM, *_outcome_arrays(outcomes), worker_id, queue, limit, lease_seconds
    )
    written = {row["id"]: row["status"] for row in rows if not row["claimed"]}
    return written, [_claimed(row) for row in rows if row["claimed"]]


async def heartbeat(
    conn: asyncpg.Connection, job_ids: Sequence[int], worker_id: str, lease_seconds: float
) -> tuple[set[int], set[int]]:
    """Extend the leases of all jobs ``worker_id`` holds with one UPDATE, skipping rows locked
    by a concurrent write (they are being finished, cancelled or rescued).

    Returns:
        ``(extended, cancel_requested)``: the ids whose lease was extended, and among them
        those whose cancellation was requested (a safety net for a cancel NOTIFY this process
        missed).
    """
    rows = await conn.fetch(_HEARTBEAT, list(job_ids), worker_id, lease_seconds)
    return {row["id"] for row in rows}, {row["id"] for row in rows if row["cancel_requested"]}


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
    """Return up to ``limit`` jobs whose lease expired to ``todo`` (``failed`` when their
    attempts are spent, ``cancelled`` when a cancel was requested), recording each in
    ``job_attempts``.

    Idempotent and safe to run from every process at once (SKIP LOCKED).

    Returns:
        records with ``id, queue, task, status, attempts`` of the rescued jobs.
    """
    return await conn.fetch(_RESCUE, limit)


async def lock_job(conn: asyncpg.Connection, job_id: int) -> Job | None:
    """The job with ``job_id``, row-locked until the transaction ends (``FOR UPDATE``)."""
    row = await conn.fetchrow(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE", job_id)
    return None if row is None else _job(row)


async def cancel_todo(conn: asyncpg.Connection, job_id: int) -> Job | None:
    """``todo`` → ``cancelled``; None when the job is not ``todo``."""
    row = await conn.fetchrow(_CANCEL_TODO, job_id)
    return None if row is None else _job(row)


async def request_cancel(conn: asyncpg.Connection, job_id: int) -> Job | None:
    """Mark an ``in_progress`` job for cancellation; None when it is not ``in_progress``."""
    row = await conn.fetchrow(_REQUEST_CANCEL, job_id)
    return None if row is None else _job(row)


async def retry_job(conn: asyncpg.Connection, job_id: int) -> Job | None:
    """``failed``/``cancelled`` → ``todo`` with fresh attempts; None for any other status."""
    row = await conn.fetchrow(_RETRY, job_id)
    return None if row is None else _job(row)


async def list_attempts(conn: asyncpg.Connection, job_id: int) -> list[Attempt]:
    """The recorded (unsuccessful) attempts of a job, oldest first."""
    return [Attempt(**dict(row)) for row in await conn.fetch(_ATTEMPTS, job_id)]


async def alembic_revision(conn: asyncpg.Connection) -> str | None:
    """The database's alembic revision, or None when it was never migrated."""
    exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    if not exists:
        return None
    value: str | None = await conn.fetchval("SELECT version_num FROM alembic_version LIMIT 1")
    return value
