"""The table statistics behind the metrics' gauges: counts per queue and status, the age of
each queue's oldest due job, and the ``todo`` jobs no live process can run."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import dashboard_queries, queries
from jobqueue.db.engine import read
from jobqueue.metrics import Metrics, TableStats


class TableStatsReader:
    """Refreshes ``metrics.table_stats`` at most every ``TABLE_STATS_TTL_SECONDS``; concurrent
    callers share one refresh (one set of queries however many scrapes arrive at once).

    Args:
        engine: the process's engine.
        metrics: whose ``table_stats`` are refreshed.
    """

    def __init__(self, engine: AsyncEngine, metrics: Metrics) -> None:
        self.engine = engine
        self.metrics = metrics
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
            async with read(self.engine) as conn:
                counts = await dashboard_queries.count_by_queue_and_status(conn)
                oldest = await dashboard_queries.oldest_due_age_by_queue(conn)
                orphans = await queries.jobs_without_worker(conn, queries.PROCESS_LIVE_SECONDS)
            queues = {row.queue for row in counts}
            self.metrics.table_stats = TableStats(
                counts={(row.queue, str(row.status)): row.jobs for row in counts},
                oldest_due_age_seconds={queue: oldest.get(queue, 0.0) for queue in queues},
                without_worker=orphans,
                taken_at=time.monotonic(),
            )
