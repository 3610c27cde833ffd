"""Counts of jobs per queue and status that do not scan the whole table, and the health of the
jobs table as an operator of a PostgreSQL queue watches it.

- ``todo`` and ``in_progress`` are counted exactly, each through its partial index
  (``ix_jobs_claim``, ``ix_jobs_in_progress``): they are the jobs that matter now, and a queue
  holds few of them compared with its history.
- ``done``, ``failed`` and ``cancelled`` are counted exactly while the planner's statistics say
  the table holds at most :data:`EXACT_FINISHED_LIMIT` finished rows; above that they are
  *estimates*: the frequency of each ``(queue, status)`` pair in the extended statistics
  ``jobs_queue_status`` (alembic 0008) times the table's row estimate (``pg_class.reltuples``),
  both as of the last ANALYZE (autovacuum runs it after 2 % of the rows changed). A pair outside
  the 1,000 most common ones counts 0. :class:`~jobqueue.db.dashboard_queries.QueueCounts` says
  which (``estimated``), and so do the API, the dashboard and the metric's help text.

SQLAlchemy Core and catalog reads; nothing commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from jobqueue.jobs import JobStatus
from jobqueue.metrics import TableHealth

EXACT_FINISHED_LIMIT: Final = 100_000
"""Finished rows (by the planner's estimate) up to which finished jobs are counted exactly."""

FINISHED: Final = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class FinishedEstimate:
    """The planner's view of the finished rows: ``total`` over all queues, and ``pairs``
    ``{(queue, status): rows}`` for the most common pairs."""

    total: int
    pairs: dict[tuple[str, JobStatus], int]


_RELTUPLES = text("SELECT reltuples FROM pg_class WHERE oid = 'jobs'::regclass")
_STATUS_FREQUENCIES = text(
    "SELECT most_common_vals::text::text[] AS vals, most_common_freqs AS freqs FROM pg_stats"
    " WHERE schemaname = current_schema() AND tablename = 'jobs' AND attname = 'status'"
)
_PAIR_FREQUENCIES = text(
    "SELECT most_common_vals AS vals, most_common_freqs AS freqs FROM pg_stats_ext"
    " WHERE schemaname = current_schema() AND tablename = 'jobs'"
    " AND statistics_name = 'jobs_queue_status'"
)


async def finished_estimate(conn: AsyncConnection) -> FinishedEstimate | None:
    """The finished rows as the statistics see them; None when the table was never analyzed
    (no estimate: count exactly)."""
    reltuples = float(await conn.scalar(_RELTUPLES) or -1)
    status_row = (await conn.execute(_STATUS_FREQUENCIES)).first()
    if reltuples < 0 or status_row is None or status_row.vals is None:
        return None
    finished = {s.value for s in FINISHED}
    share = sum(f for v, f in zip(status_row.vals, status_row.freqs, strict=True) if v in finished)
    pairs: dict[tuple[str, JobStatus], int] = {}
    pair_row = (await conn.execute(_PAIR_FREQUENCIES)).first()
    if pair_row is not None and pair_row.vals is not None:
        for (queue, status), freq in zip(pair_row.vals, pair_row.freqs, strict=True):
            if status in finished:
                pairs[(queue, JobStatus(status))] = round(reltuples * freq)
    return FinishedEstimate(round(reltuples * share), pairs)


_TABLE_STATS = text(
    "SELECT n_dead_tup, n_live_tup, last_autovacuum, last_autoanalyze FROM pg_stat_user_tables"
    " WHERE relid = 'jobs'::regclass"
)
_OLDEST_TRANSACTION = text(
    "SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8"
    " FROM pg_stat_activity WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()"
)


async def table_health(conn: AsyncConnection) -> TableHealth:
    """Dead tuples and last autovacuum of ``jobs``, and the oldest transaction holding back
    vacuum on the server (another user's transactions included when the role may see them)."""
    row: Any = (await conn.execute(_TABLE_STATS)).first()
    oldest = float(await conn.scalar(_OLDEST_TRANSACTION) or 0.0)
    if row is None:
        return TableHealth(0, 0, None, None, oldest)
    return TableHealth(
        int(row.n_dead_tup), int(row.n_live_tup), row.last_autovacuum, row.last_autoanalyze, oldest
    )
