"""The vacuum loop: it runs VACUUM on ``jobs`` once the dead-row estimate reaches its threshold,
and not before; the dead entries of claimed jobs leave the claim index."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db.engine import create_engine
from jobqueue.maintenance import Supervisor, Vacuum
from tests.conftest import AppFactory
from tests.helpers import wait_until

JOBS = 300


def _url(database_url: str, **parts: Any) -> str:
    return make_url(database_url).set(**parts).render_as_string(hide_password=False)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, 2, 5.0)
    yield engine
    await engine.dispose()


async def _dead_rows(db: asyncpg.Connection) -> int:
    value: int = await db.fetchval(
        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'jobs'::regclass"
    )
    return value


async def _claimed_jobs(db: asyncpg.Connection) -> None:
    """JOBS jobs, then all of them moved out of ``todo`` as a claim does: JOBS dead rows whose
    entries stay in the claim index until a VACUUM; the statistics flushed at once. Autovacuum
    is off for the table, so that only the loop under test vacuums it."""
    await db.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
    await db.execute(
        "INSERT INTO jobs (task, queue) SELECT 'echo', 'default' FROM generate_series(1, $1)",
        JOBS,
    )
    await db.execute("UPDATE jobs SET status = 'in_progress', attempts = 1")
    await db.execute("SELECT pg_stat_force_next_flush()")
    await db.execute("SELECT 1")  # the flush happens at the end of a transaction

    async def counted() -> bool:
        return await _dead_rows(db) >= JOBS

    await wait_until(counted, timeout=10, what="the dead rows to reach the statistics")


async def _claim_index_entries(db: asyncpg.Connection) -> int:
    """Index tuples in ``ix_jobs_claim``, dead ones included (its leaf pages, read directly)."""
    value: int = await db.fetchval(
        "SELECT reltuples::bigint FROM pg_class WHERE relname = 'ix_jobs_claim'"
    )
    return value


def test_due_takes_the_larger_of_the_floor_and_a_tenth_of_the_live_rows() -> None:
    vacuum = Vacuum(engine=None, dead_rows=1000, interval_seconds=5.0)  # type: ignore[arg-type]
    assert not vacuum.due(999, 0)
    assert vacuum.due(1000, 0)
    assert vacuum.due(1000, 10_000)
    assert not vacuum.due(1000, 10_001)  # a tenth of 10,001 is more than 1,000
    assert vacuum.due(1001, 10_001)
    off = Vacuum(engine=None, dead_rows=0, interval_seconds=5.0)  # type: ignore[arg-type]
    assert not off.enabled
    assert not off.due(10**9, 0)


async def test_below_the_threshold_nothing_runs(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await _claimed_jobs(db)
    assert not await Vacuum(engine, JOBS + 1, 5.0).vacuum_once()
    assert await _dead_rows(db) >= JOBS


async def test_at_the_threshold_the_dead_rows_are_vacuumed(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await _claimed_jobs(db)
    assert await Vacuum(engine, JOBS, 5.0).vacuum_once()
    # VACUUM reports what it removed: the estimate drops to 0, and the claim index, whose
    # entries all pointed at rows no longer todo, holds none (VACUUM sets reltuples).
    assert await _dead_rows(db) == 0
    assert await _claim_index_entries(db) == 0
    vacuumed = await db.fetchval(
        "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'jobs'::regclass"
    )
    assert vacuumed == 1


async def test_the_app_runs_the_loop_unless_it_is_off(start_app: AppFactory) -> None:
    client = await start_app(vacuum_dead_rows=0)
    loops = client.runtime.loops
    assert isinstance(loops, Supervisor)
    assert "vacuum" not in loops.states
    client = await start_app()
    loops = client.runtime.loops
    assert isinstance(loops, Supervisor)
    assert "vacuum" in loops.states


async def test_a_vacuum_running_elsewhere_is_skipped_not_waited_for(
    engine: AsyncEngine, db: asyncpg.Connection, database_url: str
) -> None:
    await _claimed_jobs(db)
    other = await asyncpg.connect(_url(database_url, drivername="postgresql"))
    try:
        async with other.transaction():  # the lock a VACUUM of the table holds
            await other.execute("LOCK TABLE jobs IN SHARE UPDATE EXCLUSIVE MODE")
            vacuum = Vacuum(engine, JOBS, 5.0)
            assert not await vacuum.vacuum_once()
            assert vacuum.enabled
    finally:
        await other.close()
    assert await _dead_rows(db) >= JOBS


async def test_a_role_that_may_not_vacuum_the_table_stops_trying(
    db: asyncpg.Connection, database_url: str
) -> None:
    role = f"jq_novacuum_{uuid.uuid4().hex[:12]}"
    await db.execute(f"CREATE ROLE {role} LOGIN")
    engine = create_engine(_url(database_url, username=role), 2, 5.0)
    try:
        await _claimed_jobs(db)
        vacuum = Vacuum(engine, JOBS, 5.0)
        assert not await vacuum.vacuum_once()
        assert not vacuum.enabled  # told once; the loop does nothing from now on
        assert await _dead_rows(db) >= JOBS
    finally:
        await engine.dispose()
        await db.execute(f"DROP ROLE {role}")
