"""The lease statements: hand-written SQL on asyncpg, each built once at import.

These are the only statements that write a job's lease columns (``status`` to and from
``in_progress``, ``attempts``, ``worker_id``, ``lease_expires_at``). Every write that moves a
job out of ``in_progress`` is fenced by the attempt it belongs to::

    WHERE id = … AND status = 'in_progress' AND worker_id = … AND attempts = …

so a worker whose lease was lost, and whose job was claimed again, writes zero rows and never
overwrites the newer attempt (River's guarded state writes). Status values come from
:class:`JobStatus`; NOTIFY payloads from :mod:`jobqueue.notify.protocol`. Times come from the
database clock (``now()``), never the process's.
"""

from __future__ import annotations

from typing import Final

from jobqueue.db.tables import sql_in
from jobqueue.jobs import AttemptOutcome, JobStatus
from jobqueue.notify import protocol

TODO: Final = JobStatus.TODO.value
IN_PROGRESS: Final = JobStatus.IN_PROGRESS.value
DONE: Final = JobStatus.DONE.value
FAILED: Final = JobStatus.FAILED.value
CANCELLED: Final = JobStatus.CANCELLED.value
_FINAL: Final = sql_in(s.value for s in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED))


def _claim(queue: int, limit: int, worker: int, lease: int, tasks: int | None) -> str:
    """The claim as two CTEs, ``next`` and ``claimed``, with the given parameter numbers.

    Higher priority first, then the earliest ``run_at``, then the oldest id: the order of
    ``ix_jobs_claim``, so the scan stops after ``limit`` entries however many jobs wait. One
    queue per statement (``queue = ANY(…)`` would sort them all). ``FOR UPDATE SKIP LOCKED``
    picks rows no other claimer holds (PostgreSQL manual, "The Locking Clause"). Only jobs of
    ``tasks`` are taken: a process never claims a job it cannot run. Nothing is taken from a
    paused queue (a row of ``queues`` with ``paused_at`` set): the check does not depend on the
    job, so the planner runs it once per statement (a one-time filter, one primary-key probe).
    ``tasks`` None: any task (a remote worker that names none).
    """
    task_filter = "" if tasks is None else f"\n      AND task = ANY(${tasks}::text[])"
    return f"""next AS (
    SELECT id FROM jobs
    WHERE status = '{TODO}' AND queue = ${queue} AND run_at <= now(){task_filter}
      AND NOT EXISTS (SELECT 1 FROM queues AS p
                      WHERE p.name = ${queue} AND p.paused_at IS NOT NULL)
    ORDER BY priority DESC, run_at, id
    LIMIT ${limit}
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs AS c
    SET status = '{IN_PROGRESS}', attempts = c.attempts + 1, worker_id = ${worker},
        started_at = now(), finished_at = NULL,
        lease_expires_at = now() + make_interval(secs => ${lease})
    FROM next
    WHERE c.id = next.id
    RETURNING c.id, c.queue, c.task, c.payload, c.attempts, c.max_attempts, c.timeout_seconds,
              extract(epoch FROM now() - c.run_at)::float8 AS wait_seconds
)"""


CLAIMED_COLUMNS: Final = (
    "id, queue, task, payload, attempts, max_attempts, timeout_seconds, wait_seconds"
)

CLAIM: Final = f"WITH {_claim(1, 2, 3, 4, 5)}\nSELECT {CLAIMED_COLUMNS} FROM claimed"
"""$1 queue, $2 limit, $3 worker_id, $4 lease seconds, $5 tasks."""

CLAIM_ANY_TASK: Final = f"WITH {_claim(1, 2, 3, 4, None)}\nSELECT {CLAIMED_COLUMNS} FROM claimed"
"""$1 queue, $2 limit, $3 worker_id, $4 lease seconds: a job of any task."""

# The long-poll probe: one statement per poll tick for all the queues that waiting lease
# requests watch, instead of one claim per waiting request. EXISTS stops at the first due row
# (the order of ix_jobs_claim); a paused queue never counts.
DUE_QUEUES: Final = f"""SELECT q.name FROM unnest($1::text[]) AS q(name)
WHERE EXISTS (SELECT 1 FROM jobs WHERE status = '{TODO}' AND queue = q.name AND run_at <= now())
  AND NOT EXISTS (SELECT 1 FROM queues AS p WHERE p.name = q.name AND p.paused_at IS NOT NULL)"""
"""$1 queue names; returns those with a due ``todo`` job."""

MAX_ATTEMPTS: Final = "SELECT id, max_attempts FROM jobs WHERE id = ANY($1::bigint[])"
"""The attempts in all of jobs a remote worker reports failed (never taken from its token)."""

# Was a refused write a repeat of one already written by the same attempt? A complete is, when
# the job is done by that attempt of that worker (a final write keeps worker_id); a fail is,
# when the attempt's history row by that worker says failed, retried or cancelled.
REPEATS: Final = """SELECT u.id, u.attempt, j.status, j.attempts, j.worker_id,
       (SELECT a.outcome FROM job_attempts AS a
        WHERE a.job_id = u.id AND a.attempt = u.attempt AND a.worker_id = u.worker
        ORDER BY a.id DESC LIMIT 1) AS outcome
FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(id, attempt, worker)
LEFT JOIN jobs AS j ON j.id = u.id"""
"""$1 job ids, $2 attempts, $3 worker ids."""

# The outcome write: the fenced UPDATE and the attempt-history rows of the attempts that did not
# succeed. A retry of a job whose cancellation was requested ends it cancelled instead.
# $1..$8 the outcome arrays, $9 worker_id.
_FINISH_CTES = f"""u AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::float8[])
        AS u(id, attempt, status, result, error_type, error_message, traceback, delay_seconds)
), written AS (
    UPDATE jobs AS j
    SET status = CASE WHEN u.status = '{TODO}' AND j.cancel_requested_at IS NOT NULL
                      THEN '{CANCELLED}' ELSE u.status END,
        result = u.result::jsonb,
        result_bytes = coalesce(octet_length(u.result), 0),
        error = CASE WHEN u.error_type IS NULL THEN NULL
                     ELSE u.error_type || ': ' || u.error_message END,
        finished_at = CASE WHEN u.status = '{TODO}' AND j.cancel_requested_at IS NULL THEN NULL
                           ELSE now() END,
        run_at = CASE WHEN u.status = '{TODO}' AND j.cancel_requested_at IS NULL
                      THEN now() + make_interval(secs => u.delay_seconds) ELSE j.run_at END,
        worker_id = CASE WHEN u.status = '{TODO}' AND j.cancel_requested_at IS NULL THEN NULL
                         ELSE j.worker_id END,
        lease_expires_at = NULL
    FROM u
    WHERE j.id = u.id AND j.status = '{IN_PROGRESS}' AND j.worker_id = $9
      AND j.attempts = u.attempt
    RETURNING j.id, j.attempts, j.status, j.started_at, j.queue, j.task
), history AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error_type,
                              error_message, traceback)
    SELECT u.id, u.attempt, $9, w.started_at,
           CASE w.status WHEN '{TODO}' THEN '{AttemptOutcome.RETRIED.value}' ELSE w.status END,
           u.error_type, u.error_message, u.traceback
    FROM written AS w JOIN u ON u.id = w.id AND u.attempt = w.attempts
    WHERE w.status <> '{DONE}'
)"""

# One NOTIFY naming the jobs that reached a final status: an uncorrelated subquery, run once,
# and only when some row was written (it wakes ?wait_seconds readers in every process).
_NOTIFY_FINISHED = f"""(SELECT count(pg_notify('{protocol.CHANNEL}',
                           {protocol.sql_payload(protocol.FINISHED, "s.ids")}))
 FROM (SELECT string_agg(f.id::text, ',') AS ids FROM written AS f
       WHERE f.status IN ({_FINAL})) AS s
 WHERE s.ids IS NOT NULL)"""

FINISH: Final = f"""WITH {_FINISH_CTES}
SELECT w.id, w.attempts, w.status, w.queue, w.task, {_NOTIFY_FINISHED} AS notified
FROM written AS w"""
"""$1..$8 outcome arrays, $9 worker_id."""

# The coordinator's usual statement: write a batch of outcomes and claim jobs for free slots, in
# one round trip. Both UPDATEs see the same snapshot and touch disjoint rows (the written ones
# are in_progress, the claimed ones todo).
FINISH_AND_CLAIM: Final = f"""WITH {_FINISH_CTES}, {_claim(10, 11, 9, 12, 13)}
SELECT true AS claimed, c.id, c.attempts, NULL AS status, c.queue, c.task, c.payload,
       c.max_attempts, c.timeout_seconds, c.wait_seconds, NULL::bigint AS notified
FROM claimed AS c
UNION ALL
SELECT false, w.id, w.attempts, w.status, NULL, NULL, NULL, NULL, NULL, NULL,
       {_NOTIFY_FINISHED}
FROM written AS w"""
"""$1..$8 outcome arrays, $9 worker_id, $10 queue, $11 limit, $12 lease seconds, $13 tasks."""

REFUSED_DETAILS: Final = "SELECT id, attempts, status FROM jobs WHERE id = ANY($1::bigint[])"
"""The state now of jobs whose outcome the fence refused (for the ``lease_lost`` log)."""

# A lease that has expired is not revived: from lease_expires_at on, the job belongs to the
# rescuer (any process may run it at any moment), so the holder learns it lost the attempt.
# SKIP LOCKED: a row locked right now is being written by this process's coordinator (or by a
# cancel or a rescue); waiting for it could deadlock with a multi-row UPDATE that locks the same
# rows in another order. Such a row is neither extended nor lost this time: ``ours`` reads the
# statement's snapshot, taken before the concurrent write commits.
HEARTBEAT: Final = f"""WITH held AS (
    SELECT * FROM unnest($1::bigint[], $2::int[]) AS h(id, attempt)
), mine AS (
    SELECT j.id FROM jobs AS j JOIN held AS h ON h.id = j.id
    WHERE j.status = '{IN_PROGRESS}' AND j.worker_id = $3 AND j.attempts = h.attempt
      AND j.lease_expires_at > now()
    FOR UPDATE OF j SKIP LOCKED
), extended AS (
    UPDATE jobs AS j
    SET lease_expires_at = now() + make_interval(secs => $4)
    FROM mine
    WHERE j.id = mine.id
    RETURNING j.id, j.attempts, j.cancel_requested_at IS NOT NULL AS cancel_requested
)
SELECT h.id, h.attempt, e.id IS NOT NULL AS extended,
       coalesce(e.cancel_requested, false) AS cancel_requested,
       e.id IS NOT NULL OR EXISTS (
           SELECT 1 FROM jobs AS j
           WHERE j.id = h.id AND j.status = '{IN_PROGRESS}' AND j.worker_id = $3
             AND j.attempts = h.attempt AND j.lease_expires_at > now()
       ) AS ours
FROM held AS h LEFT JOIN extended AS e ON e.id = h.id AND e.attempts = h.attempt"""
"""$1 job ids, $2 attempts, $3 worker_id, $4 lease seconds."""

# Undo the claim (shutdown): the attempt did not really run, so it does not count.
RELEASE: Final = f"""UPDATE jobs AS j
SET status = '{TODO}', attempts = j.attempts - 1, worker_id = NULL, started_at = NULL,
    lease_expires_at = NULL, run_at = now()
FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt)
WHERE j.id = u.id AND j.status = '{IN_PROGRESS}' AND j.worker_id = $3 AND j.attempts = u.attempt
RETURNING j.id, j.attempts"""
"""$1 job ids, $2 attempts, $3 worker_id."""

# A rescue counts as an attempt (the claim already counted it); a job that has used all its
# attempts this way ends failed, so a job that kills its worker every time cannot loop for ever.
# A job whose cancellation was requested ends cancelled. Each rescue leaves a history row, and
# one NOTIFY names the queues that got runnable jobs back.
_LEASE_EXPIRED = (
    "'lease expired during attempt ' || j.attempts || ' on worker '"
    " || coalesce(expired.worker_id, '?') || ' (the process died or stalled)'"
)

RESCUE: Final = f"""WITH rescued AS (
    UPDATE jobs AS j
    SET status = CASE WHEN j.cancel_requested_at IS NOT NULL THEN '{CANCELLED}'
                      WHEN j.attempts >= j.max_attempts THEN '{FAILED}'
                      ELSE '{TODO}' END,
        rescues = j.rescues + 1,
        error = 'LeaseExpired: ' || {_LEASE_EXPIRED},
        finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL
                             OR j.attempts >= j.max_attempts THEN now() END,
        worker_id = NULL, lease_expires_at = NULL, run_at = now()
    FROM (
        SELECT id, worker_id, started_at FROM jobs
        WHERE status = '{IN_PROGRESS}' AND lease_expires_at < now()
        ORDER BY lease_expires_at
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ) AS expired
    WHERE j.id = expired.id AND j.status = '{IN_PROGRESS}'
    RETURNING j.id, j.queue, j.task, j.status, j.attempts, expired.worker_id,
              expired.started_at, {_LEASE_EXPIRED} AS message
), history AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error_type,
                              error_message)
    SELECT r.id, r.attempts, r.worker_id, r.started_at,
           CASE WHEN r.status = '{CANCELLED}' THEN '{AttemptOutcome.CANCELLED.value}'
                ELSE '{AttemptOutcome.RESCUED.value}' END,
           'LeaseExpired', r.message
    FROM rescued AS r
)
SELECT id, queue, task, status, attempts, worker_id,
       (SELECT count(pg_notify('{protocol.CHANNEL}',
                               {protocol.sql_payload(protocol.QUEUES, "q.names")}))
        FROM (SELECT string_agg(DISTINCT r.queue, ',') AS names FROM rescued AS r
              WHERE r.status = '{TODO}') AS q
        WHERE q.names IS NOT NULL) AS notified
FROM rescued"""
"""$1 the most jobs to rescue in one statement."""
