"""The dashboard's reads (``/ui``), in SQLAlchemy Core on the tables of ``db/tables.py``.

Read-only statements: the grouped counts of the overview, the age of each queue's oldest due
job, and the job search with a text filter on the
description. Each function takes the connection from its caller; nothing here commits.

The counts do not scan the whole table (``db/counts.py``); callers still cache them (the
dashboard for about a second, the metrics for two), so open browsers and scrapers do not
multiply their cost.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Text,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from jobqueue.db.counts import EXACT_FINISHED_LIMIT, finished_estimate
from jobqueue.db.queries import page_of
from jobqueue.db.tables import jobs, status_is
from jobqueue.jobs import JobFilter, JobStatus

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
class QueueCounts:
    """Jobs per queue and status, bounded (see :func:`count_by_queue_and_status`).

    Attributes:
        counts: the kept queues' counts.
        rest: every other queue's jobs added up, per status (empty when none).
        queues: how many distinct queues the table holds (kept ones included).
        estimated: True when the ``done``, ``failed`` and ``cancelled`` counts are the
            planner's estimates, not counts (see ``db/counts.py``).
    """

    counts: list[StatusCount]
    rest: dict[JobStatus, int]
    queues: int
    estimated: bool = False


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


async def count_by_queue_and_status(
    conn: AsyncConnection, *, limit: int, first: Collection[str] = ()
) -> QueueCounts:
    """Jobs per ``(queue, status)`` of at most ``limit`` queues, and the rest summed per status.

    Without a scan of the whole table (``db/counts.py``): ``todo`` and ``in_progress`` counted
    exactly through their partial indexes; finished jobs counted exactly up to
    :data:`~jobqueue.db.counts.EXACT_FINISHED_LIMIT` rows, estimated from the planner's
    statistics above (``estimated`` in the answer). One more statement ranks the queues (those
    in ``first`` ahead, then by jobs, largest first, then by name) and adds up the ones past
    ``limit`` in the database, so the answer is at most ``(limit + 1) * statuses`` rows however
    many queues the table holds.

    Args:
        limit: queues counted one by one, >= 1.
        first: queues ranked ahead of the others (e.g. the configured ones).

    Returns:
        the counts of the kept queues (by queue, then status; pairs with no job are absent),
        the rest per status, how many queues the table holds, and whether the finished
        counts are estimates.
    """
    estimate = await finished_estimate(conn)
    estimated = estimate is not None and estimate.total > EXACT_FINISHED_LIMIT
    parameters: dict[str, Any] = {"first": list(first), "limit": limit}

    def grouped(*statuses: JobStatus) -> Select[Any]:
        return (
            select(jobs.c.queue, jobs.c.status, func.count().label("jobs"))
            .where(literal_column(status_is(*statuses)))
            .group_by(jobs.c.queue, jobs.c.status)
        )

    finished: Select[Any]
    if estimate is not None and estimated:
        pairs = sorted(estimate.pairs.items())
        parameters |= {
            "est_queues": [queue for (queue, _status), _n in pairs],
            "est_statuses": [status.value for (_queue, status), _n in pairs],
            "est_jobs": [n for _pair, n in pairs],
        }
        finished = select(
            func.unnest(bindparam("est_queues", type_=ARRAY(Text))).label("queue"),
            func.unnest(bindparam("est_statuses", type_=ARRAY(Text))).label("status"),
            func.unnest(bindparam("est_jobs", type_=ARRAY(BigInteger))).label("jobs"),
        )
    else:
        finished = grouped(JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)
    counts = union_all(grouped(JobStatus.TODO), grouped(JobStatus.IN_PROGRESS), finished).cte(
        "counts"
    )
    preferred = func.bool_or(counts.c.queue == any_(bindparam("first", type_=ARRAY(Text))))
    rank = func.row_number().over(
        order_by=(preferred.desc(), func.sum(counts.c.jobs).desc(), counts.c.queue)
    )
    ranked = select(counts.c.queue, rank.label("rank")).group_by(counts.c.queue).cte("ranked")
    kept = case((ranked.c.rank <= bindparam("limit", type_=BigInteger), counts.c.queue))
    statement = (
        select(
            kept.label("queue"),
            counts.c.status,
            cast(func.sum(counts.c.jobs), BigInteger).label("jobs"),
            select(func.count()).select_from(ranked).scalar_subquery().label("queues"),
        )
        .select_from(counts.join(ranked, ranked.c.queue == counts.c.queue))
        .group_by(kept, counts.c.status)
        .order_by(kept, counts.c.status)
    )
    rows = list(await conn.execute(statement, parameters))
    return QueueCounts(
        counts=[
            StatusCount(row.queue, JobStatus(row.status), row.jobs)
            for row in rows
            if row.queue is not None
        ],
        rest={JobStatus(row.status): row.jobs for row in rows if row.queue is None},
        queues=rows[0].queues if rows else 0,
        estimated=estimated,
    )


async def oldest_due_age_by_queue(
    conn: AsyncConnection, kept: Collection[str] | None = None
) -> dict[str | None, float]:
    """Seconds since the ``run_at`` of each queue's oldest due ``todo`` job (the SLO signal:
    how long the longest-waiting runnable job has waited). Queues with no due job are absent.

    Args:
        kept: when given, the queues answered one by one; the others come as one entry under
            None (the oldest of them all), so the answer stays small however many queues the
            table holds.
    """
    age = func.extract("epoch", func.now() - func.min(jobs.c.run_at))
    queue: ColumnElement[Any] = jobs.c.queue
    if kept is not None:
        queue = case((jobs.c.queue == any_(bindparam("kept", type_=ARRAY(Text))), jobs.c.queue))
    statement = (
        select(queue.label("queue"), age.label("age_seconds"))
        .where(literal_column(status_is(JobStatus.TODO)), jobs.c.run_at <= func.now())
        .group_by(queue)
    )
    parameters = {} if kept is None else {"kept": list(kept)}
    return {row.queue: float(row.age_seconds) for row in await conn.execute(statement, parameters)}


async def search_jobs(
    conn: AsyncConnection, where: JobFilter, *, limit: int, before_id: int | None = None
) -> list[JobSummary]:
    """Jobs newest first (by id), keyset-paginated, filtered by ``where`` (its ``text`` keeps
    jobs whose description contains it, case-insensitively; see ``queries.page_of``).

    Returns:
        at most ``limit`` summaries, highest id first.
    """
    statement = page_of(select(*_SUMMARY_COLUMNS), where, limit=limit, before_id=before_id)
    summaries: list[JobSummary] = []
    for row in await conn.execute(statement):
        values = dict(row._mapping)
        values["status"] = JobStatus(values["status"])
        summaries.append(JobSummary(**values))
    return summaries
