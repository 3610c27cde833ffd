"""Counts without a scan of the whole table: active jobs exact, finished jobs exact up to a
limit and the planner's estimate above it; and the jobs table's vacuum state."""

from __future__ import annotations

import asyncpg
import pytest

from jobqueue.db import dashboard_queries
from jobqueue.db.counts import table_health
from jobqueue.db.engine import create_engine, read
from jobqueue.jobs import JobStatus


async def _fill(db: asyncpg.Connection, finished: int, todo: int) -> None:
    await db.execute(
        "INSERT INTO jobs (task, queue, status, finished_at)"
        " SELECT 'echo', CASE WHEN g % 4 = 0 THEN 'emails' ELSE 'default' END,"
        " CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'done' END, now()"
        " FROM generate_series(1, $1) g",
        finished,
    )
    await db.execute(
        "INSERT INTO jobs (task, queue) SELECT 'echo', 'default' FROM generate_series(1, $1)",
        todo,
    )
    await db.execute("ANALYZE jobs")


async def _counts(database_url: str) -> dashboard_queries.QueueCounts:
    engine = create_engine(database_url, 1, 5.0)
    try:
        async with read(engine) as conn:
            return await dashboard_queries.count_by_queue_and_status(conn, limit=10)
    finally:
        await engine.dispose()


def _by_pair(counts: dashboard_queries.QueueCounts) -> dict[tuple[str, JobStatus], int]:
    return {(c.queue, c.status): c.jobs for c in counts.counts}


async def test_counts_small_table_exact(db: asyncpg.Connection, database_url: str) -> None:
    await _fill(db, finished=2000, todo=7)
    counts = await _counts(database_url)
    assert counts.estimated is False
    pairs = _by_pair(counts)
    assert pairs[("default", JobStatus.TODO)] == 7
    assert pairs[("default", JobStatus.DONE)] + pairs[("emails", JobStatus.DONE)] == 1800
    assert pairs[("default", JobStatus.FAILED)] + pairs[("emails", JobStatus.FAILED)] == 200


async def test_counts_many_finished_rows_estimated_active_exact(
    db: asyncpg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_queries, "EXACT_FINISHED_LIMIT", 1000)
    await _fill(db, finished=20_000, todo=7)
    counts = await _counts(database_url)
    assert counts.estimated is True
    pairs = _by_pair(counts)
    assert pairs[("default", JobStatus.TODO)] == 7  # exact, from the partial index
    done = pairs[("default", JobStatus.DONE)] + pairs[("emails", JobStatus.DONE)]
    assert 16_200 <= done <= 19_800  # 18,000 within 10 %
    assert 0.2 <= pairs[("emails", JobStatus.DONE)] / done <= 0.3  # a quarter are emails


async def test_table_health_sees_dead_tuples_and_an_open_transaction(
    db: asyncpg.Connection, database_url: str
) -> None:
    await _fill(db, finished=1000, todo=0)
    await db.execute("DELETE FROM jobs WHERE status = 'failed'")
    holder = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    engine = create_engine(database_url, 1, 5.0)
    try:
        transaction = holder.transaction(isolation="repeatable_read")
        await transaction.start()
        await holder.fetchval("SELECT count(*) FROM jobs")  # takes a snapshot: holds back vacuum
        await holder.execute("SELECT pg_sleep(0.05)")
        await db.execute("SELECT pg_stat_force_next_flush()")
        async with read(engine) as conn:
            health = await table_health(conn)
        await transaction.rollback()
    finally:
        await holder.close()
        await engine.dispose()
    assert health.dead_tuples >= 100
    assert health.oldest_transaction_seconds >= 0.05
