"""The SQL of enqueue, reads, lists, cancel and retry (the process registry is in ``registry.py``).

Two kinds of statement, as DESIGN.md asks:

- the measured hot path, the enqueue INSERT, is hand-written SQL on the pool's asyncpg
  connection (``unnest`` of one array per column: a batch is one statement, one round trip),
  built once at import from the column table below;
- everything else is SQLAlchemy Core on the tables of :mod:`jobqueue.db.tables`, run on a
  SQLAlchemy ``AsyncConnection`` (``db.engine.read`` / ``db.engine.write``).

The lease transitions (claim, heartbeat, finish, release, rescue) are not here: they belong to
``jobqueue.leases``, the only package that writes a job's lease columns.

Each function takes the connection (and so the transaction) from its caller; nothing here
commits. Times come from the database clock (``now()``), never the process's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from sqlalchemy import (
    BigInteger,
    Select,
    and_,
    bindparam,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from jobqueue.db.tables import job_attempts, jobs
from jobqueue.jobs import Attempt, AttemptOutcome, Job, JobFilter, JobStatus, NewJob

SIZE_COLUMNS: Final = ("payload_bytes", "result_bytes")
"""The bookkeeping columns of ``jobs``: the bytes of the JSON text of ``payload`` and ``result``,
written with them, read only to cut a page to its byte budget (:func:`list_jobs`)."""

JOB_COLUMNS: Final = tuple(c.name for c in jobs.columns if c.name not in SIZE_COLUMNS)
"""Every column of ``jobs`` but :data:`SIZE_COLUMNS`, in table order: what a :class:`Job` is
built from."""

_JOB_COLUMNS_SQL = ", ".join(JOB_COLUMNS)
_JOB_SELECT: Final = tuple(jobs.c[name] for name in JOB_COLUMNS)

# The enqueue statement's inputs: (column, array element type, value of a NewJob). Adding a
# column to the insert is one line here (plus the column in tables.py and its migration).
_INSERT_INPUTS: Final[tuple[tuple[str, str, Callable[[NewJob], Any]], ...]] = (
    ("queue", "text", lambda j: j.queue),
    ("task", "text", lambda j: j.task),
    ("payload", "text", lambda j: j.payload_json),
    ("description", "text", lambda j: j.description),
    ("priority", "int", lambda j: j.priority),
    ("max_attempts", "int", lambda j: j.max_attempts),
    ("timeout_seconds", "float8", lambda j: j.timeout_seconds),
    ("delay_seconds", "float8", lambda j: j.delay_seconds),
    ("run_at", "timestamptz", lambda j: j.run_at),
    ("idempotency_key", "text", lambda j: j.idempotency_key),
)
# How an input becomes a column value; inputs that are not columns (delay_seconds) fold into one.
_INSERT_VALUES: Final = {
    "payload": "u.payload::jsonb",
    "run_at": "coalesce(u.run_at, now() + make_interval(secs => u.delay_seconds))",
    # Not sent: the size of the very text inserted (the compact JSON whose size the service
    # checked against JOBQUEUE_MAX_PAYLOAD_BYTES).
    "payload_bytes": "octet_length(u.payload)",
}
_INSERT_COLUMNS: Final = (
    *(name for name, _, _ in _INSERT_INPUTS if name in jobs.c),
    "payload_bytes",
)
assert {name for name, _, _ in _INSERT_INPUTS} - set(_INSERT_COLUMNS) == {"delay_seconds"}
_INSERT_SELECT = ", ".join(_INSERT_VALUES.get(name, f"u.{name}") for name in _INSERT_COLUMNS)

_UNNEST = ", ".join(f"${i}::{kind}[]" for i, (_, kind, _) in enumerate(_INSERT_INPUTS, 1))
_UNNEST_NAMES = ", ".join(name for name, _, _ in _INSERT_INPUTS)
_NEXT_PARAMETER = len(_INSERT_INPUTS) + 1

_INSERT_ROWS = f"""
INSERT INTO jobs ({", ".join(_INSERT_COLUMNS)})
SELECT {_INSERT_SELECT}
FROM unnest({_UNNEST}) WITH ORDINALITY AS u({_UNNEST_NAMES}, n)
ORDER BY u.n
-- A taken key inserts nothing; the service then reads the existing job. Concurrent inserts of
-- one key wait on the unique index until the first commits (PostgreSQL manual, INSERT,
-- "ON CONFLICT Clause"), so exactly one row is created however many requests race.
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
"""

_INSERT = f"{_INSERT_ROWS}RETURNING {_JOB_COLUMNS_SQL}"


def _insert_and_notify(columns: str, returning: str) -> str:
    """The INSERT and a NOTIFY in one statement, giving ``columns`` of the new rows.

    The NOTIFY's channel and payload are the two parameters after the column arrays: this
    module sends what the caller built (``jobqueue.notify`` owns the format). One statement is
    one implicit transaction: no BEGIN/COMMIT round trips, and the NOTIFY is delivered at its
    commit; it is sent only when a row was inserted (the uncorrelated subquery runs once, when
    the first row is read). Identity values follow the insert order, so ORDER BY id gives the
    input order back.
    """
    channel, payload = _NEXT_PARAMETER, _NEXT_PARAMETER + 1
    return f"""
WITH inserted AS ({_INSERT_ROWS}RETURNING {returning})
SELECT {columns}, (SELECT pg_notify(${channel}, ${payload})) AS notified
FROM inserted
ORDER BY id
"""


_INSERT_AND_NOTIFY = _insert_and_notify(_JOB_COLUMNS_SQL, _JOB_COLUMNS_SQL)
_INSERT_IDS_AND_NOTIFY = _insert_and_notify("id", "id")


@dataclass(frozen=True, slots=True)
class Notice:
    """A NOTIFY to send with a statement: the channel and the payload text."""

    channel: str
    payload: str


def job_of(row: asyncpg.Record | Row[Any]) -> Job:
    """A :class:`Job` from a row holding :data:`JOB_COLUMNS` (extra columns are ignored)."""
    mapping: Any = row._mapping if isinstance(row, Row) else row
    values = {name: mapping[name] for name in JOB_COLUMNS}
    values["status"] = JobStatus(values["status"])
    return Job(**values)


def _insert_arrays(new_jobs: Sequence[NewJob]) -> list[list[Any]]:
    """The parameter arrays of the insert statements, one per input, one entry per job."""
    return [[value(job) for job in new_jobs] for _, _, value in _INSERT_INPUTS]


async def insert_jobs(
    conn: asyncpg.Connection, new_jobs: Sequence[NewJob], *, notice: Notice | None = None
) -> list[Job]:
    """Insert jobs with one statement, in the given order; a job whose idempotency key is
    already taken (by a stored job or an earlier one of ``new_jobs``) is skipped.

    Args:
        conn: an asyncpg connection, usually inside the caller's transaction.
        new_jobs: checked specs; ``payload_json`` is JSON text.
        notice: also send this NOTIFY in the same statement when a row was inserted (one round
            trip; use it outside a transaction, where the statement is its own transaction).

    Returns:
        the jobs inserted, in the order of ``new_jobs`` (skipped ones left out).

    Raises:
        asyncpg.DataError: a value PostgreSQL refuses (the service checks first).
    """
    arrays = _insert_arrays(new_jobs)
    if notice is None:
        rows = await conn.fetch(_INSERT, *arrays)
    else:
        rows = await conn.fetch(_INSERT_AND_NOTIFY, *arrays, notice.channel, notice.payload)
    return [job_of(row) for row in rows]


async def insert_job_ids(
    conn: asyncpg.Connection, new_jobs: Sequence[NewJob], notice: Notice
) -> list[int]:
    """Insert jobs without idempotency keys and send ``notice``, in one statement; only the
    new ids come back (the lean form of :func:`insert_jobs` for batches).

    Returns:
        the new ids, in the order of ``new_jobs``.
    """
    rows = await conn.fetch(
        _INSERT_IDS_AND_NOTIFY, *_insert_arrays(new_jobs), notice.channel, notice.payload
    )
    return [row[0] for row in rows]


async def notify(conn: AsyncConnection, notice: Notice) -> None:
    """Send one NOTIFY. Inside a transaction PostgreSQL delivers it at commit and drops it on
    rollback (PostgreSQL manual, NOTIFY); send at most one per transaction (it takes a global
    lock at commit)."""
    await conn.execute(select(func.pg_notify(notice.channel, notice.payload)))


async def notify_raw(conn: asyncpg.Connection, notice: Notice) -> None:
    """:func:`notify` on an asyncpg connection (inside the enqueue transaction)."""
    await conn.execute("SELECT pg_notify($1, $2)", notice.channel, notice.payload)


def _status_literal(status: JobStatus) -> Any:
    # Rendered into the SQL (never user text: an enum value), so that the planner sees it and a
    # partial index (ix_jobs_status_id) can serve it; a generic plan for "status = $1" would not.
    return bindparam("status", JobStatus(status).value, literal_execute=True)


async def get_job(conn: AsyncConnection, job_id: int) -> Job | None:
    """The job with ``job_id``, or None."""
    row = (await conn.execute(select(*_JOB_SELECT).where(jobs.c.id == job_id))).first()
    return None if row is None else job_of(row)


async def lock_job(conn: AsyncConnection, job_id: int) -> Job | None:
    """The job with ``job_id``, row-locked until the transaction ends (``FOR UPDATE``)."""
    statement = select(*_JOB_SELECT).where(jobs.c.id == job_id).with_for_update()
    row = (await conn.execute(statement)).first()
    return None if row is None else job_of(row)


_BY_IDEMPOTENCY_KEY = f"SELECT {_JOB_COLUMNS_SQL} FROM jobs WHERE idempotency_key = ANY($1::text[])"


async def jobs_by_idempotency_key(conn: asyncpg.Connection, keys: Sequence[str]) -> list[Job]:
    """The stored jobs holding any of ``keys`` (served by ``uq_jobs_idempotency_key``).

    Hand-written on asyncpg: it runs inside the enqueue transaction, next to the INSERT.
    """
    return [job_of(row) for row in await conn.fetch(_BY_IDEMPOTENCY_KEY, list(keys))]


LIKE_ESCAPE: Final = "\\"
"""The escape character of the description filter's ``ILIKE … ESCAPE`` clause."""


def like_pattern(value: str) -> str:
    """An ``ILIKE`` pattern that matches ``value`` anywhere, taken literally.

    ``%``, ``_`` and the escape character itself are escaped with :data:`LIKE_ESCAPE`, so
    ``"100%"`` finds the text ``100%`` and not every description starting with ``100``.

    Returns:
        ``%<escaped value>%``.
    """
    escaped = (
        value.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


def page_of(
    statement: Select[Any], where: JobFilter, *, limit: int, before_id: int | None = None
) -> Select[Any]:
    """``statement`` (a select over ``jobs``) as one page, newest first, keyset-paginated:
    ids below ``before_id``. Only the filters given in ``where`` enter the SQL, so each
    combination gets a plan of its own. Shared by the job list and the dashboard's search.

    Args:
        where: the filters (see :class:`JobFilter`).
        limit: at most this many rows (the caller caps it).
        before_id: the last id of the previous page, or None for the first page.
    """
    if where.status is not None:
        statement = statement.where(jobs.c.status == _status_literal(where.status))
    if before_id is not None:
        statement = statement.where(jobs.c.id < before_id)
    if where.queue is not None:
        statement = statement.where(jobs.c.queue == where.queue)
    if where.task is not None:
        statement = statement.where(jobs.c.task == where.task)
    if where.text is not None:
        pattern = like_pattern(where.text)
        statement = statement.where(jobs.c.description.ilike(pattern, escape=LIKE_ESCAPE))
    return statement.order_by(jobs.c.id.desc()).limit(limit)


@dataclass(frozen=True, slots=True)
class JobRows:
    """The jobs of one page and whether more follow (the next page starts after the last)."""

    jobs: list[Job]
    more: bool


def _sized_page(
    where: JobFilter, *, limit: int, max_bytes: int, before_id: int | None
) -> Select[Any]:
    """The statement of :func:`list_jobs`: ids and sizes first, then only the rows kept.

    ``candidates`` reads the id and ``payload_bytes + result_bytes`` of at most ``limit + 1``
    jobs (the page order of :func:`page_of`; integers in the row itself, no payload is
    detoasted); ``ranked`` numbers them and keeps a running sum of their sizes; the outer
    select joins back to ``jobs`` for the prefix that fits: the first job always (so paging
    makes progress), then each while the sum is at most ``max_bytes`` and at most ``limit``.
    Sizes are never negative, so what fits is a prefix and the cursor after its last job skips
    nothing. ``more``, the same on every row, says whether any candidate was left out.
    """
    size = (jobs.c.payload_bytes + jobs.c.result_bytes).label("bytes")
    candidates = page_of(select(jobs.c.id, size), where, limit=limit + 1, before_id=before_id)
    listed = candidates.cte("candidates")
    order = listed.c.id.desc()
    ranked = select(
        listed.c.id,
        func.row_number().over(order_by=order).label("n"),
        func.sum(listed.c.bytes).over(order_by=order).label("running"),
    ).cte("ranked")
    budget = literal(max_bytes, BigInteger)  # sum() of integers is a bigint; so may this be
    fits = and_(ranked.c.n <= limit, or_(ranked.c.n == 1, ranked.c.running <= budget))
    # correlate(None): the subquery reads all of ``ranked``, not the outer query's current row.
    more = exists(select(literal_column("1")).select_from(ranked).where(~fits).correlate(None))
    return (
        select(*_JOB_SELECT, more.label("more"))
        .select_from(jobs.join(ranked, ranked.c.id == jobs.c.id))
        .where(fits)
        .order_by(jobs.c.id.desc())
    )


async def list_jobs(
    conn: AsyncConnection,
    where: JobFilter,
    *,
    limit: int,
    max_bytes: int,
    before_id: int | None = None,
) -> JobRows:
    """One page of jobs, newest first (by id), keyset-paginated (see :func:`page_of`), at most
    ``limit`` jobs and at most ``max_bytes`` bytes of payload and result JSON text together
    (``payload_bytes + result_bytes``), but always at least one job when any is left.

    The cut is made in the database from the stored sizes (see :func:`_sized_page`): the rows
    left out never reach this process, so a page costs memory in proportion to ``max_bytes``,
    not to ``limit`` times the largest payload.

    Args:
        limit: at most this many jobs, >= 1 (the caller caps it).
        max_bytes: the byte budget of the page's payloads and results, bytes, >= 1.
        before_id: the last id of the previous page, or None for the first page.

    Returns:
        the jobs, highest id first, and whether more follow.
    """
    statement = _sized_page(where, limit=limit, max_bytes=max_bytes, before_id=before_id)
    rows = list(await conn.execute(statement))
    return JobRows(jobs=[job_of(row) for row in rows], more=bool(rows) and rows[0].more)


async def list_attempts(conn: AsyncConnection, job_id: int) -> list[Attempt]:
    """The recorded (unsuccessful) attempts of a job, oldest first."""
    a = job_attempts.c
    statement = (
        select(
            a.attempt,
            a.worker_id,
            a.started_at,
            a.finished_at,
            a.outcome,
            a.error_type,
            a.error_message,
            a.traceback,
        )
        .where(a.job_id == job_id)
        .order_by(a.id)
    )
    attempts: list[Attempt] = []
    for row in await conn.execute(statement):
        values = dict(row._mapping)
        values["outcome"] = AttemptOutcome(values["outcome"])
        attempts.append(Attempt(**values))
    return attempts


async def cancel_todo(conn: AsyncConnection, job_id: int) -> Job | None:
    """``todo`` → ``cancelled``; None when the job is not ``todo``."""
    statement = (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == JobStatus.TODO.value)
        .values(
            status=JobStatus.CANCELLED.value,
            finished_at=func.now(),
            cancel_requested_at=func.now(),
        )
        .returning(*_JOB_SELECT)
    )
    row = (await conn.execute(statement)).first()
    return None if row is None else job_of(row)


async def request_cancel(conn: AsyncConnection, job_id: int) -> Job | None:
    """Mark an ``in_progress`` job for cancellation; None when it is not ``in_progress``.

    The process holding the lease cancels the attempt; its fenced outcome write (or a rescue)
    then ends the job ``cancelled``.
    """
    statement = (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == JobStatus.IN_PROGRESS.value)
        .values(cancel_requested_at=func.coalesce(jobs.c.cancel_requested_at, func.now()))
        .returning(*_JOB_SELECT)
    )
    row = (await conn.execute(statement)).first()
    return None if row is None else job_of(row)


async def retry_job(conn: AsyncConnection, job_id: int) -> Job | None:
    """``failed``/``cancelled`` → ``todo`` with fresh attempts; None for any other status.

    Lease columns are not touched: a final job holds no lease (``lease_expires_at`` is NULL),
    and ``worker_id`` keeps naming the worker of the last attempt until the next claim.
    """
    statement = (
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.status.in_([JobStatus.FAILED.value, JobStatus.CANCELLED.value]),
        )
        .values(
            status=JobStatus.TODO.value,
            attempts=0,
            rescues=0,
            run_at=func.now(),
            started_at=None,
            finished_at=None,
            result=null(),
            result_bytes=0,
            error=None,
            cancel_requested_at=None,
        )
        .returning(*_JOB_SELECT)
    )
    row = (await conn.execute(statement)).first()
    return None if row is None else job_of(row)


async def alembic_revision(conn: AsyncConnection) -> str | None:
    """The database's alembic revision, or None when it was never migrated."""
    exists_ = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    if not exists_:
        return None
    value: str | None = await conn.scalar(text("SELECT version_num FROM alembic_version LIMIT 1"))
    return value
