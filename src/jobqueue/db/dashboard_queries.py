"""The dashboard's reads (``/ui``), in SQLAlchemy Core on the tables of ``db/tables.py``.

Read-only statements: the grouped counts of the overview, the finished-per-minute series of the
last hour, the age of each queue's oldest due job, and the job search with a text filter on the
description. Each function takes the connection from its caller; nothing here commits.

The counts scan: ``count(*)`` per status has to visit the rows. Callers cache them (the
dashboard for about a second, the metrics for two), so open browsers and scrapers do not
multiply that cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from jobqueue.db.queries import page_of
from jobqueue.db.tables import jobs, status_is
from jobqueue.jobs import JobStatus

LIKE_ESCAPE = "\\"
"""The escape character of the description filter's ``ILIKE … ESCAPE`` clause."""

# One row per minute from the minute holding ``now() - 1 hour`` to the current one (61 rows,
# the first and last partial), zeros included, so the chart needs no gap filling. Only
# ``done`` and ``failed`` count as finished: a cancelled job was not processed.
_FINISHED_PER_MINUTE = text(f"""
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now() - interval '1 hour'),
                           date_trunc('minute', now()), interval '1 minute') AS minute
), finished AS (
    SELECT date_trunc('minute', finished_at) AS minute,
           count(*) FILTER (WHERE {status_is(JobStatus.DONE)}) AS done,
           count(*) FILTER (WHERE {status_is(JobStatus.FAILED)}) AS failed
    FROM jobs
    WHERE {status_is(JobStatus.DONE, JobStatus.FAILED)}
      AND finished_at > now() - interval '1 hour'
    GROUP BY 1
)
SELECT m.minute, coalesce(f.done, 0) AS done, coalesce(f.failed, 0) AS failed
FROM minutes AS m LEFT JOIN finished AS f ON f.minute = m.minute
ORDER BY m.minute
""")

_SUMMARY_COLUMNS = (
    jobs.c.id,
    jobs.c.queue,
    jobs.c.task,
    jobs.c.status,
    jobs.c.description,
    jobs.c.priority,
    jobs.c.attempts,
    jobs.c.max_attempts,
    jobs.c.created_at,
    jobs.c.run_at,
    jobs.c.started_at,
    jobs.c.finished_at,
    jobs.c.error,
)


@dataclass(frozen=True, slots=True)
class StatusCount:
    """How many jobs of one queue are in one status."""

    queue: str
    status: JobStatus
    jobs: int


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Jobs that finished in one minute (UTC, ``minute`` truncated to the minute)."""

    minute: datetime
    done: int
    failed: int


@dataclass(frozen=True, slots=True)
class JobSummary:
    """The columns of a job a listing shows (no payload, no result: they may be large).

    Times are timezone-aware UTC; ``error`` is ``"Type: message"`` of the last failure.
    """

    id: int
    queue: str
    task: str
    status: JobStatus
    description: str | None
    priority: int
    attempts: int
    max_attempts: int
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


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


async def count_by_queue_and_status(conn: AsyncConnection) -> list[StatusCount]:
    """Jobs per ``(queue, status)``, one grouped query; pairs with no job are absent.

    Returns:
        the counts ordered by queue, then status.
    """
    statement = (
        select(jobs.c.queue, jobs.c.status, func.count().label("jobs"))
        .group_by(jobs.c.queue, jobs.c.status)
        .order_by(jobs.c.queue, jobs.c.status)
    )
    return [
        StatusCount(row.queue, JobStatus(row.status), row.jobs)
        for row in await conn.execute(statement)
    ]


async def oldest_due_age_by_queue(conn: AsyncConnection) -> dict[str, float]:
    """Seconds since the ``run_at`` of each queue's oldest due ``todo`` job (the SLO signal:
    how long the longest-waiting runnable job has waited). Queues with no due job are absent.
    """
    age = func.extract("epoch", func.now() - func.min(jobs.c.run_at))
    statement = (
        select(jobs.c.queue, age.label("age_seconds"))
        .where(literal_column(status_is(JobStatus.TODO)), jobs.c.run_at <= func.now())
        .group_by(jobs.c.queue)
    )
    return {row.queue: float(row.age_seconds) for row in await conn.execute(statement)}


async def finished_per_minute(conn: AsyncConnection) -> list[MinuteCount]:
    """Jobs that reached ``done`` or ``failed`` per minute over the last hour (database clock).

    Returns:
        61 rows, oldest first, one per minute from the minute holding ``now() - 1 hour`` to the
        current minute (both partial), zeros included.
    """
    rows = await conn.execute(_FINISHED_PER_MINUTE)
    return [MinuteCount(row.minute, row.done, row.failed) for row in rows]


async def search_jobs(
    conn: AsyncConnection,
    *,
    limit: int,
    before_id: int | None = None,
    status: JobStatus | None = None,
    queue: str | None = None,
    task: str | None = None,
    text: str | None = None,
) -> list[JobSummary]:
    """Jobs newest first (by id), keyset-paginated, with an optional text filter.

    As ``queries.list_jobs``, only the given filters enter the SQL.

    Args:
        limit: at most this many rows (the caller caps it).
        before_id: the last id of the previous page, or None for the first page.
        status, queue, task: equality filters, None for "any".
        text: keep jobs whose description contains it, case-insensitively (``ILIKE``, with
            ``%`` and ``_`` taken literally; see :func:`like_pattern`); None for "any".

    Returns:
        at most ``limit`` summaries, highest id first.
    """
    statement = select(*_SUMMARY_COLUMNS)
    if text is not None:
        statement = statement.where(
            jobs.c.description.ilike(like_pattern(text), escape=LIKE_ESCAPE)
        )
    statement = page_of(
        statement, limit=limit, before_id=before_id, status=status, queue=queue, task=task
    )
    summaries: list[JobSummary] = []
    for row in await conn.execute(statement):
        values = dict(row._mapping)
        values["status"] = JobStatus(values["status"])
        summaries.append(JobSummary(**values))
    return summaries
