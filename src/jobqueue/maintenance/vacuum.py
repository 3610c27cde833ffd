"""Vacuum: keeps the claim index free of the entries that finished claims leave behind.

Every claim moves a row out of ``todo``, so its entry in the partial index ``ix_jobs_claim``
(``WHERE status = 'todo'``) points at a dead row version from then on. The claim scans that index
from its head in claim order, and those dead entries sit exactly at the head: until VACUUM
removes them, every claim steps over all the entries of the jobs claimed before it. Measured on a
backlog of 1,000,000 jobs drained without it, the drain slowed from 11,000 to 5,000 jobs/s
(docs/performance.md, "The big backlog"); autovacuum comes too late for a queue (it looks at a
database once a minute, and waits for 20 % of the table to be dead).

So every ``interval_seconds`` this loop reads the table's dead-row estimate (one statistics read)
and runs ``VACUUM (SKIP_LOCKED) jobs`` when it reaches ``max(dead_rows, live rows / 10)``. The
floor keeps a vacuum's cost, which grows with the table (each one scans every index of
``jobs``), small beside the claims it saves on a table holding many finished rows. Every process
runs it; VACUUM takes a lock that a second VACUUM of the same table does not wait for
(``SKIP_LOCKED``), and a finished VACUUM resets the estimate, so processes do not repeat each
other's work. A role that may not vacuum ``jobs`` (not its owner) logs ``vacuum_not_permitted``
once and the loop stops trying; autovacuum still runs.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import retention
from jobqueue.db.engine import connect, read
from jobqueue.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)

LIVE_FRACTION = 0.1
"""A vacuum waits for at least this share of the table's live rows to be dead."""


class Vacuum:
    """Vacuums ``jobs`` when enough dead rows have piled up, checked every ``interval_seconds``.

    Args:
        engine: the process's engine.
        dead_rows: the dead-row estimate that triggers a vacuum (at least; see the module);
            0 turns the loop off (autovacuum alone).
        interval_seconds: the period between checks, in seconds.
    """

    def __init__(self, engine: AsyncEngine, dead_rows: int, interval_seconds: float) -> None:
        self.engine = engine
        self.dead_rows = dead_rows
        self.interval_seconds = interval_seconds

    @property
    def enabled(self) -> bool:
        """False when ``dead_rows`` is 0 (the loop would only sleep)."""
        return self.dead_rows > 0

    def due(self, dead: int, live: int) -> bool:
        """Whether ``dead`` rows beside ``live`` ones call for a vacuum."""
        return self.enabled and dead >= max(self.dead_rows, live * LIVE_FRACTION)

    async def vacuum_once(self) -> bool:
        """Check the estimate and vacuum when it is due.

        Returns:
            True when a VACUUM ran; False when none was due, or PostgreSQL skipped the table (a
            concurrent VACUUM holds it: ``jobs_vacuum_skipped``; this role may not vacuum it:
            ``vacuum_not_permitted``, logged once, after which the loop does nothing).

        Raises:
            DatabaseUnavailable: the database cannot be reached.
            asyncpg.PostgresError: the VACUUM failed (a statement timeout, say).
        """
        async with read(self.engine) as conn:
            dead, live = await retention.jobs_dead_rows(conn)
        if not self.due(dead, live):
            return False
        started = time.perf_counter()
        skipped: list[str] = []  # what PostgreSQL said when it skipped the table

        def heard(_conn: object, message: asyncpg.PostgresLogMessage) -> None:
            text = str(message.message or "")
            if "skipping" in text:
                skipped.append(text[:300])

        async with connect(self.engine) as raw:  # no transaction: VACUUM cannot run in one
            raw.add_log_listener(heard)
            try:
                await raw.execute(retention.VACUUM_JOBS)
            finally:
                raw.remove_log_listener(heard)
        if skipped and "lock not available" not in skipped[0]:
            # Not the table's owner: every later try would be skipped too.
            log.warning("vacuum_not_permitted", detail=skipped[0], dead_rows=dead)
            self.dead_rows = 0
            return False
        log.info(
            "jobs_vacuum_skipped" if skipped else "jobs_vacuumed",
            dead_rows=dead,
            live_rows=live,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return not skipped

    async def run(self) -> None:
        """Check every ``interval_seconds`` until cancelled; a database fault is logged and the
        next check tried on time. Anything else propagates (the supervisor restarts it)."""
        while True:
            try:
                await self.vacuum_once()
            except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
                log.warning("vacuum_failed", error=str(exc)[:500])
            await asyncio.sleep(self.interval_seconds)
