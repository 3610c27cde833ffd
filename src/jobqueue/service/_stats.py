"""The table statistics behind the metrics' gauges: counts per queue and status (without a
scan of the whole table: ``db/counts.py``), the age of each queue's oldest due job, the ``todo``
jobs no live process can run, and the jobs table's vacuum state.

Bounded in the database: the queries answer for at most the metrics' label limit of queues
(the configured ones first, then the largest) and add up the rest, so a table holding 50,000
queues costs a scrape a few hundred rows, not 50,000."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import dashboard_queries, registry
from jobqueue.db.counts import table_health
from jobqueue.db.engine import read
from jobqueue.metrics import Metrics


class TableStatsReader:
    """Refreshes ``metrics.table_stats`` at most every ``TABLE_STATS_TTL_SECONDS``; concurrent
    callers share one refresh (one set of queries however many scrapes arrive at once).

    Args:
        engine: the process's engine.
        metrics: whose ``table_stats`` are refreshed.
        first: queues counted one by one before any other (the configured ones).
    """

    def __init__(self, engine: AsyncEngine, metrics: Metrics, first: Collection[str] = ()) -> None:
        self.engine = engine
        self.metrics = metrics
        self.first = sorted(first)
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Refresh the gauges unless they are fresh.

        Raises:
            DatabaseUnavailable: the gauges keep their last values.
        """
        if not self.metrics.table_stats_stale():
            return
        async with self._lock:
            if not self.metrics.table_stats_stale():
                return  # another caller refreshed them while this one waited
            limit = self.metrics.queues.limit
            async with read(self.engine) as conn:
                counts = await dashboard_queries.count_by_queue_and_status(
                    conn, limit=limit, first=self.first
                )
                kept = [row.queue for row in counts.counts]
                oldest = await dashboard_queries.oldest_due_age_by_queue(conn, kept)
                orphans = await registry.jobs_without_worker(
                    conn, registry.PROCESS_LIVE_SECONDS, kept
                )
                health = await table_health(conn)
            by_pair: dict[tuple[str | None, str], int] = {
                (row.queue, str(row.status)): row.jobs for row in counts.counts
            }
            by_pair.update({(None, str(status)): jobs for status, jobs in counts.rest.items()})
            queues = {queue for queue, _status in by_pair}
            self.metrics.set_table_stats(
                by_pair,
                {queue: oldest.get(queue, 0.0) for queue in queues},
                orphans,
                counts.estimated,
                health,
            )
