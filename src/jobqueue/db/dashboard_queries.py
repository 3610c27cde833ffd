"""The dashboard's SQL (``/ui``), hand-written on an asyncpg connection like ``repository.py``.

Read-only statements: the grouped counts of the overview, the finished-per-minute series of the
last hour, and the job search with a text filter on the description. Each function takes the
connection from its caller; nothing here opens a transaction or commits.

Every statement scans: ``count(*)`` per status has to visit the rows, and no index covers
``finished_at`` or ``description``. The dashboard service caches the overview for about a
second so that open browsers do not multiply that cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from jobqueue.db import repository
from jobqueue.jobs import JobStatus

LIKE_ESCAPE = "\\"
"""The escape character of the description filter's ``ILIKE … ESCAPE`` clause."""

_COUNTS = """
SELECT queue, status, count(*) AS jobs
FROM jobs
GROUP BY queue, status
ORDER BY queue, status
"""

# One row per minute from the minute holding ``now() - 1 hour`` to the current one (61 rows,
# the first and last partial), zeros included, so the chart needs no gap filling. Only
# ``done`` and ``failed`` count as finished: a cancelled job was not processed.
_FINISHED_PER_MINUTE = """
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now() - interval '1 hour'),
                           date_trunc('minute', now()), interval '1 minute') AS minute
), finished AS (
    SELECT date_trunc('minute', finished_at) AS minute,
           count(*) FILTER (WHERE status = 'done') AS done,
           count(*) FILTER (WHERE status = 'failed') AS failed
    FROM jobs
    WHERE status IN ('done', 'failed') AND finished_at > now() - interval '1 hour'
    GROUP BY 1
)
SELECT m.minute, coalesce(f.done, 0) AS done, coalesce(f.failed, 0) AS failed
FROM minutes AS m LEFT JOIN finished AS f ON f.minute = m.minute
ORDER BY m.minute
"""

_SUMMARY_COLUMNS = (
    "id, queue, task, status, description, priority, attempts, max_attempts, created_at,"
    " run_at, started_at, finished_at, error"
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


def like_pattern(text: str) -> str:
    """An ``ILIKE`` pattern that matches ``text`` anywhere, taken literally.

    ``%``, ``_`` and the escape character itself are escaped with :data:`LIKE_ESCAPE`, so
    ``"100%"`` finds the text ``100%`` and not every description starting with ``100``.

    Returns:
        ``%<escaped text>%``.
    """
    escaped = (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


async def count_by_queue_and_status(conn: asyncpg.Connection) -> list[StatusCount]:
    """Jobs per ``(queue, status)``, one grouped query; pairs with no job are absent.

    Returns:
        the counts ordered by queue, then status.
    """
    rows = await conn.fetch(_COUNTS)
    return [StatusCount(row["queue"], JobStatus(row["status"]), row["jobs"]) for row in rows]


_OLDEST_DUE = """
SELECT queue, extract(epoch FROM now() - min(run_at))::float8 AS age_seconds
FROM jobs
WHERE status = 'todo' AND run_at <= now()
GROUP BY queue
"""


async def oldest_due_age_by_queue(conn: asyncpg.Connection) -> dict[str, float]:
    """Seconds since the ``run_at`` of each queue's oldest due ``todo`` job (the SLO signal:
    how long the longest-waiting runnable job has waited). Queues with no due job are absent.
    """
    return {row["queue"]: row["age_seconds"] for row in await conn.fetch(_OLDEST_DUE)}


async def finished_per_minute(conn: asyncpg.Connection) -> list[MinuteCount]:
    """Jobs that reached ``done`` or ``failed`` per minute over the last hour (database clock).

    Grouped by ``date_trunc('minute', finished_at)`` over ``finished_at > now() - interval
    '1 hour'``.

    Returns:
        61 rows, oldest first, one per minute from the minute holding ``now() - 1 hour`` to the
        current minute (both partial), zeros included.
    """
    rows = await conn.fetch(_FINISHED_PER_MINUTE)
    return [MinuteCount(row["minute"], row["done"], row["failed"]) for row in rows]


async def search_jobs(
    conn: asyncpg.Connection,
    *,
    limit: int,
    before_id: int | None = None,
    status: JobStatus | None = None,
    queue: str | None = None,
    task: str | None = None,
    text: str | None = None,
) -> list[JobSummary]:
    """Jobs newest first (by id), keyset-paginated, with an optional text filter.

    As ``repository.list_jobs``, only the given filters enter the SQL; the status is a literal
    from the enum so the planner sees it (a partial index may serve it).

    Args:
        limit: at most this many rows (the caller caps it).
        before_id: the last id of the previous page, or None for the first page.
        status, queue, task: equality filters, None for "any".
        text: keep jobs whose description contains it, case-insensitively (``ILIKE``, with
            ``%`` and ``_`` taken literally; see :func:`like_pattern`); None for "any".

    Returns:
        at most ``limit`` summaries, highest id first.
    """
    extra = None
    if text is not None:
        extra = (f"description ILIKE {{}} ESCAPE '{LIKE_ESCAPE}'", like_pattern(text))
    sql, args = repository.page_query(
        _SUMMARY_COLUMNS,
        limit=limit,
        before_id=before_id,
        status=status,
        queue=queue,
        task=task,
        extra=extra,
    )
    rows = await conn.fetch(sql, *args)
    return [_summary(row) for row in rows]


def _summary(row: asyncpg.Record) -> JobSummary:
    values: dict[str, Any] = dict(row)
    values["status"] = JobStatus(values["status"])
    return JobSummary(**values)
