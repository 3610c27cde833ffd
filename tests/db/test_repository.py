"""Repository statements on a real database: claim, fenced finish, heartbeat, rescue, release."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from jobqueue.db import repository
from jobqueue.jobs import JobStatus, NewJob, Outcome


def _new(task: str = "echo", priority: int = 0, max_attempts: int = 3) -> NewJob:
    return NewJob(
        task=task,
        payload_json='{"n": 1}',
        queue="default",
        priority=priority,
        description=None,
        max_attempts=max_attempts,
        timeout_seconds=300.0,
    )


@pytest.fixture
async def conn(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """The ``db`` connection with SQLAlchemy's jsonb codec (text in, Python objects out)."""
    await db.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda data: __import__("json").loads(data[1:].decode()),
        schema="pg_catalog",
        format="binary",
    )
    return db


async def _expire(conn: asyncpg.Connection, job_id: int) -> None:
    await conn.execute(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", job_id
    )


async def test_insert_jobs_returns_rows_in_given_order(conn: asyncpg.Connection) -> None:
    jobs = await repository.insert_jobs(conn, [_new("a"), _new("b"), _new("c")])
    assert [job.task for job in jobs] == ["a", "b", "c"]
    assert [job.status for job in jobs] == [JobStatus.TODO] * 3
    assert jobs[0].payload == {"n": 1}
    assert jobs[0].id < jobs[1].id < jobs[2].id


async def test_claim_higher_priority_first_then_oldest(conn: asyncpg.Connection) -> None:
    low, high, mid, high2 = await repository.insert_jobs(
        conn, [_new(priority=-5), _new(priority=10), _new(priority=0), _new(priority=10)]
    )
    claimed = await repository.claim(
        conn, queue="default", limit=10, worker_id="w", lease_seconds=30
    )
    assert [job.id for job in claimed] == [high.id, high2.id, mid.id, low.id]
    assert [job.attempt for job in claimed] == [1, 1, 1, 1]


async def test_claim_skips_other_queues_and_future_jobs(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO jobs (task, queue) VALUES ('echo', 'other')")
    await conn.execute("INSERT INTO jobs (task, run_at) VALUES ('echo', now() + interval '1 h')")
    claimed = await repository.claim(
        conn, queue="default", limit=10, worker_id="w", lease_seconds=30
    )
    assert claimed == []


async def test_claim_limit_takes_only_that_many(conn: asyncpg.Connection) -> None:
    await repository.insert_jobs(conn, [_new() for _ in range(5)])
    claimed = await repository.claim(
        conn, queue="default", limit=2, worker_id="w", lease_seconds=30
    )
    assert len(claimed) == 2
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'todo'") == 3


async def test_finish_after_lease_lost_and_reclaimed_writes_nothing(
    conn: asyncpg.Connection,
) -> None:
    (job,) = await repository.insert_jobs(conn, [_new()])
    (first,) = await repository.claim(
        conn, queue="default", limit=1, worker_id="A", lease_seconds=30
    )
    await _expire(conn, job.id)
    rescued = await repository.rescue(conn)
    assert [(row["id"], row["status"]) for row in rescued] == [(job.id, "todo")]
    (second,) = await repository.claim(
        conn, queue="default", limit=1, worker_id="B", lease_seconds=30
    )
    assert second.attempt == 2
    # A comes back late with the outcome of attempt 1: the fence drops it.
    stale = Outcome(job.id, first.attempt, JobStatus.DONE, result_json='"stale"')
    assert await repository.finish(conn, [stale], "A") == {}
    row = await conn.fetchrow("SELECT status, worker_id, attempts, result FROM jobs")
    assert (row["status"], row["worker_id"], row["attempts"], row["result"]) == (
        "in_progress", "B", 2, None
    )  # fmt: skip
    fresh = Outcome(job.id, second.attempt, JobStatus.DONE, result_json='"fresh"')
    assert await repository.finish(conn, [fresh], "B") == {job.id: "done"}
    row = await conn.fetchrow("SELECT status, result, rescues FROM jobs")
    assert (row["status"], row["result"], row["rescues"]) == ("done", "fresh", 1)


async def test_finish_same_worker_older_attempt_writes_nothing(conn: asyncpg.Connection) -> None:
    (job,) = await repository.insert_jobs(conn, [_new()])
    await repository.claim(conn, queue="default", limit=1, worker_id="A", lease_seconds=30)
    await _expire(conn, job.id)
    await repository.rescue(conn)
    await repository.claim(conn, queue="default", limit=1, worker_id="A", lease_seconds=30)
    stale = Outcome(job.id, 1, JobStatus.FAILED, error_type="RuntimeError", error_message="old")
    assert await repository.finish(conn, [stale], "A") == {}
    assert await conn.fetchval("SELECT status FROM jobs") == "in_progress"


async def test_finish_retry_sets_todo_with_run_at_in_future(conn: asyncpg.Connection) -> None:
    await repository.insert_jobs(conn, [_new()])
    (claimed,) = await repository.claim(
        conn, queue="default", limit=1, worker_id="A", lease_seconds=30
    )
    retry = Outcome(
        claimed.id,
        1,
        JobStatus.TODO,
        error_type="RuntimeError",
        error_message="x",
        traceback="Traceback ...",
        retry_delay_seconds=60,
    )
    assert await repository.finish(conn, [retry], "A") == {claimed.id: "todo"}
    history = await repository.list_attempts(conn, claimed.id)
    assert [
        (a.attempt, a.worker_id, a.outcome, a.error_type, a.error_message) for a in history
    ] == [(1, "A", "retried", "RuntimeError", "x")]
    row = await conn.fetchrow(
        "SELECT status, error, worker_id, run_at > now() + interval '59 s' AS later FROM jobs"
    )
    assert (row["status"], row["error"], row["worker_id"], row["later"]) == (
        "todo", "RuntimeError: x", None, True
    )  # fmt: skip


async def test_rescue_last_attempt_ends_failed(conn: asyncpg.Connection) -> None:
    (job,) = await repository.insert_jobs(conn, [_new(max_attempts=1)])
    await repository.claim(conn, queue="default", limit=1, worker_id="A", lease_seconds=30)
    await _expire(conn, job.id)
    rescued = await repository.rescue(conn)
    assert [(row["id"], row["status"]) for row in rescued] == [(job.id, "failed")]
    row = await conn.fetchrow("SELECT status, error, rescues, finished_at FROM jobs")
    assert row["status"] == "failed"
    assert row["error"] == (
        "LeaseExpired: lease expired during attempt 1 on worker A (the process died or stalled)"
    )
    history = await repository.list_attempts(conn, job.id)
    assert [(a.attempt, a.worker_id, a.outcome, a.error_type) for a in history] == [
        (1, "A", "rescued", "LeaseExpired")
    ]
    assert row["rescues"] == 1
    assert row["finished_at"] is not None


async def test_rescue_leaves_live_leases_alone(conn: asyncpg.Connection) -> None:
    await repository.insert_jobs(conn, [_new()])
    await repository.claim(conn, queue="default", limit=1, worker_id="A", lease_seconds=30)
    assert await repository.rescue(conn) == []
    assert await conn.fetchval("SELECT status FROM jobs") == "in_progress"


async def test_heartbeat_extends_only_own_in_progress_jobs(conn: asyncpg.Connection) -> None:
    a, b = await repository.insert_jobs(conn, [_new(), _new()])
    await repository.claim(conn, queue="default", limit=1, worker_id="A", lease_seconds=1)
    await repository.claim(conn, queue="default", limit=1, worker_id="B", lease_seconds=1)
    await conn.execute("UPDATE jobs SET cancel_requested_at = now() WHERE id = $1", a.id)
    extended, cancel = await repository.heartbeat(conn, [a.id, b.id], "A", 600)
    assert (extended, cancel) == ({a.id}, {a.id})
    later = await conn.fetchval(
        "SELECT lease_expires_at > now() + interval '500 s' FROM jobs WHERE id = $1", a.id
    )
    assert later is True


async def test_release_puts_job_back_without_counting_attempt(conn: asyncpg.Connection) -> None:
    await repository.insert_jobs(conn, [_new()])
    (claimed,) = await repository.claim(
        conn, queue="default", limit=1, worker_id="A", lease_seconds=30
    )
    assert await repository.release(conn, [(claimed.id, 1)], "B") == set()
    assert await repository.release(conn, [(claimed.id, 1)], "A") == {claimed.id}
    row = await conn.fetchrow("SELECT status, attempts, worker_id, started_at FROM jobs")
    assert tuple(row) == ("todo", 0, None, None)


async def test_claim_concurrent_claimers_never_share_a_job(
    conn: asyncpg.Connection, database_url: str
) -> None:
    await repository.insert_jobs(conn, [_new() for _ in range(200)])
    dsn = database_url.replace("+asyncpg", "")
    others = [await asyncpg.connect(dsn) for _ in range(4)]
    try:
        import asyncio

        async def drain(c: asyncpg.Connection, name: str) -> list[int]:
            ids: list[int] = []
            while batch := await repository.claim(
                c, queue="default", limit=7, worker_id=name, lease_seconds=30
            ):
                ids.extend(job.id for job in batch)
            return ids

        results = await asyncio.gather(*(drain(c, f"w{i}") for i, c in enumerate(others)))
    finally:
        for c in others:
            await c.close()
    claimed = [job_id for ids in results for job_id in ids]
    assert len(claimed) == 200
    assert len(set(claimed)) == 200


async def test_heartbeat_skips_row_locked_by_a_concurrent_write(
    conn: asyncpg.Connection, database_url: str
) -> None:
    import asyncio

    a, b = await repository.insert_jobs(conn, [_new(), _new()])
    await repository.claim(conn, queue="default", limit=2, worker_id="A", lease_seconds=30)
    other = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        async with other.transaction():
            # As the completer's finish would: row a is locked until this transaction ends.
            await other.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", a.id)
            extended, cancel = await asyncio.wait_for(
                repository.heartbeat(conn, [a.id, b.id], "A", 600), timeout=5
            )
    finally:
        await other.close()
    assert (extended, cancel) == ({b.id}, set())
