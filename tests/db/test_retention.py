"""Retention: the pruner deletes finished jobs past their age, in batches, one process at a time,
and a DELETE of active jobs wakes their long-polls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from prometheus_client import generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import retention
from jobqueue.db.engine import create_engine
from jobqueue.db.retention import PRUNE_LOCK_KEY
from jobqueue.jobs import JobStatus
from jobqueue.maintenance import Pruner
from jobqueue.metrics import Metrics
from jobqueue.notify import protocol

HOUR = 3600.0


async def _job(
    db: asyncpg.Connection,
    status: str,
    finished_hours_ago: float | None,
    queue: str = "default",
) -> int:
    """A job row of ``status`` that finished ``finished_hours_ago`` hours ago, with one attempt
    row; its id."""
    job_id: int = await db.fetchval(
        "INSERT INTO jobs (task, queue, status, finished_at, created_at) VALUES ('echo', $1, $2,"
        " now() - make_interval(hours => $3::int),"
        " now() - make_interval(hours => coalesce($3::int, 0))) RETURNING id",
        queue,
        status,
        None if finished_hours_ago is None else int(finished_hours_ago),
    )
    await db.execute(
        "INSERT INTO job_attempts (job_id, attempt, outcome) VALUES ($1, 1, 'failed')", job_id
    )
    return job_id


async def _ids(db: asyncpg.Connection) -> set[int]:
    return {row["id"] for row in await db.fetch("SELECT id FROM jobs")}


PrunerFactory = Callable[..., Pruner]


@pytest.fixture
async def pruner_of(database_url: str) -> AsyncIterator[PrunerFactory]:
    """Pruners, each on an engine of its own (disposed at the end)."""
    engines: list[AsyncEngine] = []

    def make(ages: dict[JobStatus, float], batch_size: int = 1000) -> Pruner:
        engine = create_engine(database_url, 2, 5.0)
        engines.append(engine)
        return Pruner(engine, ages, 60.0, Metrics(), batch_size=batch_size)

    yield make
    for engine in engines:
        await engine.dispose()


AGES = {JobStatus.DONE: HOUR, JobStatus.CANCELLED: HOUR, JobStatus.FAILED: 0.0}


async def test_pruner_old_finished_jobs_deleted_others_kept(
    db: asyncpg.Connection, pruner_of: PrunerFactory
) -> None:
    old_done = await _job(db, "done", 2)
    old_cancelled = await _job(db, "cancelled", 2)
    kept = {
        await _job(db, "done", 0),  # finished now: younger than its age
        await _job(db, "failed", 48),  # failed is kept for ever (age 0)
        await _job(db, "todo", None),
        await _job(db, "in_progress", None),
    }
    pruned = await pruner_of(AGES).prune_once()
    assert pruned == {JobStatus.DONE: 1, JobStatus.CANCELLED: 1}
    assert await _ids(db) == kept
    orphans = await db.fetchval(
        "SELECT count(*) FROM job_attempts WHERE job_id = ANY($1)", [old_done, old_cancelled]
    )
    assert orphans == 0
    assert await db.fetchval("SELECT count(*) FROM job_attempts") == len(kept)


async def test_pruner_active_jobs_never_deleted_even_when_old(
    db: asyncpg.Connection, pruner_of: PrunerFactory
) -> None:
    # A todo or in_progress row with an old finished_at (a retried job keeps none, but a row
    # written by hand might): the pruner looks at final statuses only.
    active = {await _job(db, "todo", 100), await _job(db, "in_progress", 100)}
    assert await pruner_of(AGES).prune_once() == {JobStatus.DONE: 0, JobStatus.CANCELLED: 0}
    assert await _ids(db) == active


async def test_pruner_many_due_jobs_deleted_in_batches(
    db: asyncpg.Connection, pruner_of: PrunerFactory
) -> None:
    await db.execute(
        "INSERT INTO jobs (task, status, finished_at, created_at) SELECT 'echo', 'done',"
        " now() - interval '2 hours', now() - interval '2 hours' FROM generate_series(1, 2500)"
    )
    pruner = pruner_of(AGES, batch_size=1000)  # three windows
    assert await pruner.prune_once() == {JobStatus.DONE: 2500, JobStatus.CANCELLED: 0}
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_pruner_lock_held_elsewhere_round_skipped(
    db: asyncpg.Connection, pruner_of: PrunerFactory
) -> None:
    due = await _job(db, "done", 2)
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock($1)", PRUNE_LOCK_KEY)
        assert await pruner_of(AGES).prune_once() is None
        assert await _ids(db) == {due}
    assert await pruner_of(AGES).prune_once() == {JobStatus.DONE: 1, JobStatus.CANCELLED: 0}


async def test_pruner_two_at_once_delete_each_job_once(
    db: asyncpg.Connection, pruner_of: PrunerFactory
) -> None:
    await db.execute(
        "INSERT INTO jobs (task, status, finished_at, created_at) SELECT 'echo', 'done',"
        " now() - interval '2 hours', now() - interval '2 hours' FROM generate_series(1, 3000)"
    )
    first, second = pruner_of(AGES, 500), pruner_of(AGES, 500)
    results = await asyncio.gather(first.prune_once(), second.prune_once())
    deleted = sum(r[JobStatus.DONE] for r in results if r is not None)
    assert deleted == 3000
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_pruner_counts_pruned_jobs_per_queue_and_status(
    db: asyncpg.Connection, pruner_of: PrunerFactory
) -> None:
    await _job(db, "done", 2, queue="emails")
    await _job(db, "done", 2, queue="emails")
    await _job(db, "cancelled", 2, queue="reports")
    pruner = pruner_of(AGES)
    await pruner.prune_once()
    text = generate_latest(pruner.metrics.registry).decode()
    assert 'jobqueue_jobs_pruned_total{queue="emails",status="done"} 2.0' in text
    assert 'jobqueue_jobs_pruned_total{queue="reports",status="cancelled"} 1.0' in text


def test_pruner_age_for_active_status_refused() -> None:
    with pytest.raises(ValueError, match="todo"):
        Pruner(None, {JobStatus.TODO: 1.0}, 60.0, Metrics())  # type: ignore[arg-type]


def test_pruner_all_ages_zero_not_enabled() -> None:
    ages = dict.fromkeys(AGES, 0.0)
    assert not Pruner(None, ages, 60.0, Metrics()).enabled  # type: ignore[arg-type]


async def _listen(db: asyncpg.Connection) -> asyncio.Queue[str]:
    heard: asyncio.Queue[str] = asyncio.Queue()
    await db.add_listener(protocol.CHANNEL, lambda *args: heard.put_nowait(args[3]))
    return heard


async def test_delete_of_active_jobs_notifies_them_as_finished(
    db: asyncpg.Connection, database_url: str
) -> None:
    todo = await _job(db, "todo", None)
    running = await _job(db, "in_progress", None)
    await _job(db, "done", 1)
    listener = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        heard = await _listen(listener)
        await db.execute("DELETE FROM jobs")
        payload = await asyncio.wait_for(heard.get(), 10)
    finally:
        await listener.close()
    assert protocol.decode(payload) == protocol.JobsFinished(frozenset({todo, running}))


async def test_delete_of_finished_jobs_notifies_nothing(
    db: asyncpg.Connection, database_url: str
) -> None:
    await _job(db, "done", 1)
    listener = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        heard = await _listen(listener)
        await db.execute("DELETE FROM jobs")
        await db.execute("SELECT pg_notify($1, 'marker')", protocol.CHANNEL)
        # Notifications arrive in commit order: the marker comes first only if the DELETE
        # sent nothing.
        assert await asyncio.wait_for(heard.get(), 10) == "marker"
    finally:
        await listener.close()


async def test_pruner_stops_at_rows_too_young_to_be_due(
    db: asyncpg.Connection, pruner_of: PrunerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await _job(db, "done", 2)
    await db.execute(
        "INSERT INTO jobs (task, status, finished_at) SELECT 'echo', 'done', now()"
        " FROM generate_series(1, 5000)"
    )
    windows: list[int] = []
    pruner = pruner_of(AGES, batch_size=100)
    real = retention.prune_window

    async def counted(*args: Any) -> Any:
        windows.append(1)
        return await real(*args)

    monkeypatch.setattr(retention, "prune_window", counted)
    assert await pruner.prune_once() == {JobStatus.DONE: 1, JobStatus.CANCELLED: 0}
    assert len(windows) == 1  # the first window held young rows: the walk stopped there
    assert old not in await _ids(db)
