"""The lease statements on a real database: claim, fenced finish, heartbeat, rescue, release."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from jobqueue import leases
from jobqueue.db import queries
from jobqueue.db.engine import create_engine, read
from jobqueue.jobs import AttemptOutcome, JobStatus, NewJob, Outcome
from jobqueue.leases import ClaimSpec, FinishResult, Refused
from tests.helpers import one

TASKS = ("echo", "a", "b", "c")


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


def _spec(limit: int = 10, lease: float = 30, tasks: tuple[str, ...] = TASKS) -> ClaimSpec:
    return ClaimSpec(queue="default", limit=limit, tasks=tasks, lease_seconds=lease)


@pytest.fixture
async def conn(db: asyncpg.Connection) -> asyncpg.Connection:
    """The ``db`` connection with the service's jsonb codec (text in, Python objects out)."""
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


async def _attempts(database_url: str, job_id: int) -> list[tuple[object, ...]]:
    engine = create_engine(database_url, 1)
    try:
        async with read(engine) as sa:
            history = await queries.list_attempts(sa, job_id)
    finally:
        await engine.dispose()
    return [(a.attempt, a.worker_id, a.outcome, a.error_type, a.error_message) for a in history]


async def test_insert_jobs_returns_rows_in_given_order(conn: asyncpg.Connection) -> None:
    jobs = await queries.insert_jobs(conn, [_new("a"), _new("b"), _new("c")])
    assert [job.task for job in jobs] == ["a", "b", "c"]
    assert [job.status for job in jobs] == [JobStatus.TODO] * 3
    assert jobs[0].payload == {"n": 1}
    assert jobs[0].id < jobs[1].id < jobs[2].id


async def test_claim_higher_priority_first_then_oldest(conn: asyncpg.Connection) -> None:
    low, high, mid, high2 = await queries.insert_jobs(
        conn, [_new(priority=-5), _new(priority=10), _new(priority=0), _new(priority=10)]
    )
    claimed = await leases.claim(conn, "w", _spec())
    assert [job.id for job in claimed] == [high.id, high2.id, mid.id, low.id]
    assert [job.attempt for job in claimed] == [1, 1, 1, 1]


async def test_claim_skips_other_queues_and_future_jobs(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO jobs (task, queue) VALUES ('echo', 'other')")
    await conn.execute("INSERT INTO jobs (task, run_at) VALUES ('echo', now() + interval '1 h')")
    assert await leases.claim(conn, "w", _spec()) == []


async def test_claim_only_tasks_the_claimer_has(conn: asyncpg.Connection) -> None:
    new_task, old_task = await queries.insert_jobs(conn, [_new("new"), _new("echo")])
    claimed = await leases.claim(conn, "old-replica", _spec(tasks=("echo",)))
    assert [job.id for job in claimed] == [old_task.id]
    row = await one(conn, "SELECT status, attempts FROM jobs WHERE id = $1", new_task.id)
    assert tuple(row) == ("todo", 0)


async def test_claim_limit_takes_only_that_many(conn: asyncpg.Connection) -> None:
    await queries.insert_jobs(conn, [_new() for _ in range(5)])
    assert len(await leases.claim(conn, "w", _spec(limit=2))) == 2
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'todo'") == 3


async def test_finish_after_lease_lost_and_reclaimed_writes_nothing(
    conn: asyncpg.Connection,
) -> None:
    (job,) = await queries.insert_jobs(conn, [_new()])
    (first,) = await leases.claim(conn, "A", _spec(limit=1))
    await _expire(conn, job.id)
    rescued = await leases.rescue(conn)
    assert [(r.job_id, r.status, r.worker_id) for r in rescued] == [(job.id, "todo", "A")]
    (second,) = await leases.claim(conn, "B", _spec(limit=1))
    assert second.attempt == 2
    # A comes back late with the outcome of attempt 1: the fence refuses it.
    stale = Outcome(job.id, first.attempt, JobStatus.DONE, result_json='"stale"')
    assert await leases.finish(conn, "A", [stale]) == FinishResult(
        refused=[Refused((job.id, 1), 2, JobStatus.IN_PROGRESS)]
    )
    row = await one(conn, "SELECT status, worker_id, attempts, result FROM jobs")
    assert tuple(row) == ("in_progress", "B", 2, None)
    fresh = Outcome(job.id, second.attempt, JobStatus.DONE, result_json='"fresh"')
    result = await leases.finish(conn, "B", [fresh])
    assert result.written == {(job.id, 2): JobStatus.DONE}
    row = await one(conn, "SELECT status, result, rescues FROM jobs")
    assert tuple(row) == ("done", "fresh", 1)


async def test_finish_stale_and_current_attempt_of_one_job_in_one_batch(
    conn: asyncpg.Connection, database_url: str
) -> None:
    (job,) = await queries.insert_jobs(conn, [_new()])
    await leases.claim(conn, "A", _spec(limit=1))
    await _expire(conn, job.id)
    await leases.rescue(conn)
    await leases.claim(conn, "A", _spec(limit=1))
    stale = Outcome(job.id, 1, JobStatus.FAILED, error_type="Cancelled", error_message="old")
    current = Outcome(job.id, 2, JobStatus.DONE, result_json='"new"')
    result = await leases.finish(conn, "A", [stale, current])
    assert result.written == {(job.id, 2): JobStatus.DONE}
    assert result.refused == [Refused((job.id, 1), 2, JobStatus.DONE)]
    assert await conn.fetchval("SELECT result FROM jobs") == "new"
    # Only the rescue left a history row; the refused outcome wrote nothing.
    assert await _attempts(database_url, job.id) == [
        (
            1,
            "A",
            AttemptOutcome.RESCUED,
            "LeaseExpired",
            await conn.fetchval("SELECT error_message FROM job_attempts"),
        )
    ]


async def test_finish_retry_sets_todo_with_run_at_in_future(
    conn: asyncpg.Connection, database_url: str
) -> None:
    await queries.insert_jobs(conn, [_new()])
    (claimed,) = await leases.claim(conn, "A", _spec(limit=1))
    retry = Outcome(
        claimed.id,
        1,
        JobStatus.TODO,
        error_type="RuntimeError",
        error_message="x",
        traceback="Traceback ...",
        retry_delay_seconds=60,
    )
    result = await leases.finish(conn, "A", [retry])
    assert result.written == {(claimed.id, 1): JobStatus.TODO}
    assert await _attempts(database_url, claimed.id) == [
        (1, "A", AttemptOutcome.RETRIED, "RuntimeError", "x")
    ]
    row = await one(
        conn, "SELECT status, error, worker_id, run_at > now() + interval '59 s' AS later FROM jobs"
    )
    assert tuple(row) == ("todo", "RuntimeError: x", None, True)


async def test_finish_and_claim_in_one_statement(conn: asyncpg.Connection) -> None:
    await queries.insert_jobs(conn, [_new(), _new(), _new()])
    (first,) = await leases.claim(conn, "A", _spec(limit=1))
    done = Outcome(first.id, 1, JobStatus.DONE, result_json="1")
    result = await leases.finish(conn, "A", [done], _spec(limit=5))
    assert result.written == {(first.id, 1): JobStatus.DONE}
    assert len(result.claimed) == 2
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'in_progress'") == 2


async def test_rescue_last_attempt_ends_failed(conn: asyncpg.Connection, database_url: str) -> None:
    (job,) = await queries.insert_jobs(conn, [_new(max_attempts=1)])
    await leases.claim(conn, "A", _spec(limit=1))
    await _expire(conn, job.id)
    rescued = await leases.rescue(conn)
    assert [(r.job_id, r.status) for r in rescued] == [(job.id, JobStatus.FAILED)]
    row = await one(conn, "SELECT status, error, rescues, finished_at FROM jobs")
    assert row["status"] == "failed"
    assert row["error"] == (
        "LeaseExpired: lease expired during attempt 1 on worker A (the process died or stalled)"
    )
    history = await _attempts(database_url, job.id)
    assert [(a, w, o, t) for a, w, o, t, _ in history] == [
        (1, "A", AttemptOutcome.RESCUED, "LeaseExpired")
    ]
    assert row["rescues"] == 1
    assert row["finished_at"] is not None


async def test_rescue_notifies_the_queues_of_runnable_jobs(
    conn: asyncpg.Connection, database_url: str
) -> None:
    (job,) = await queries.insert_jobs(conn, [_new()])
    await leases.claim(conn, "A", _spec(limit=1))
    await _expire(conn, job.id)
    listener = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    got: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("jobqueue", lambda *args: got.put_nowait(args[3]))
    try:
        await leases.rescue(conn)
        assert await asyncio.wait_for(got.get(), 5) == "q:default"
    finally:
        await listener.close()


async def test_rescue_leaves_live_leases_alone(conn: asyncpg.Connection) -> None:
    await queries.insert_jobs(conn, [_new()])
    await leases.claim(conn, "A", _spec(limit=1))
    assert await leases.rescue(conn) == []
    assert await conn.fetchval("SELECT status FROM jobs") == "in_progress"


async def test_heartbeat_extends_own_attempts_and_reports_cancel_requests(
    conn: asyncpg.Connection,
) -> None:
    a, b = await queries.insert_jobs(conn, [_new(), _new()])
    await leases.claim(conn, "A", _spec(limit=1, lease=5))
    await leases.claim(conn, "B", _spec(limit=1, lease=5))
    await conn.execute("UPDATE jobs SET cancel_requested_at = now() WHERE id = $1", a.id)
    result = await leases.heartbeat(conn, "A", [(a.id, 1), (b.id, 1)], 600)
    assert result.extended == {(a.id, 1)}
    assert result.cancel_requested == {(a.id, 1)}
    assert result.lost == {(b.id, 1)}  # B holds it: for A it is lost
    later = await conn.fetchval(
        "SELECT lease_expires_at > now() + interval '500 s' FROM jobs WHERE id = $1", a.id
    )
    assert later is True


async def test_heartbeat_expired_lease_is_lost_not_revived(conn: asyncpg.Connection) -> None:
    (job,) = await queries.insert_jobs(conn, [_new()])
    await leases.claim(conn, "A", _spec(limit=1))
    await _expire(conn, job.id)
    result = await leases.heartbeat(conn, "A", [(job.id, 1)], 600)
    assert result.extended == frozenset()
    assert result.lost == {(job.id, 1)}
    assert await conn.fetchval("SELECT lease_expires_at < now() FROM jobs") is True


async def test_heartbeat_stale_attempt_is_lost_current_one_extended(
    conn: asyncpg.Connection,
) -> None:
    (job,) = await queries.insert_jobs(conn, [_new()])
    await leases.claim(conn, "A", _spec(limit=1))
    await _expire(conn, job.id)
    await leases.rescue(conn)
    await leases.claim(conn, "A", _spec(limit=1))
    result = await leases.heartbeat(conn, "A", [(job.id, 1), (job.id, 2)], 600)
    assert result.extended == {(job.id, 2)}
    assert result.lost == {(job.id, 1)}


async def test_heartbeat_skips_row_locked_by_a_concurrent_write(
    conn: asyncpg.Connection, database_url: str
) -> None:
    a, b = await queries.insert_jobs(conn, [_new(), _new()])
    await leases.claim(conn, "A", _spec(limit=2))
    other = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        async with other.transaction():
            # As the coordinator's finish would: row a is locked until this transaction ends.
            await other.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", a.id)
            result = await asyncio.wait_for(
                leases.heartbeat(conn, "A", [(a.id, 1), (b.id, 1)], 600), timeout=5
            )
    finally:
        await other.close()
    assert result.extended == {(b.id, 1)}
    assert result.lost == frozenset()


async def test_release_puts_job_back_without_counting_attempt(conn: asyncpg.Connection) -> None:
    await queries.insert_jobs(conn, [_new()])
    (claimed,) = await leases.claim(conn, "A", _spec(limit=1))
    assert await leases.release(conn, "B", [claimed.key]) == set()
    assert await leases.release(conn, "A", [claimed.key]) == {claimed.key}
    row = await one(conn, "SELECT status, attempts, worker_id, started_at FROM jobs")
    assert tuple(row) == ("todo", 0, None, None)


async def test_claim_concurrent_claimers_never_share_a_job(
    conn: asyncpg.Connection, database_url: str
) -> None:
    await queries.insert_jobs(conn, [_new() for _ in range(200)])
    dsn = database_url.replace("+asyncpg", "")
    others = [await asyncpg.connect(dsn) for _ in range(4)]
    try:

        async def drain(c: asyncpg.Connection, name: str) -> list[int]:
            ids: list[int] = []
            while batch := await leases.claim(c, name, _spec(limit=7)):
                ids.extend(job.id for job in batch)
            return ids

        results = await asyncio.gather(*(drain(c, f"w{i}") for i, c in enumerate(others)))
    finally:
        for c in others:
            await c.close()
    claimed = [job_id for ids in results for job_id in ids]
    assert len(claimed) == 200
    assert len(set(claimed)) == 200


async def test_claim_paused_queue_takes_nothing_until_resumed(conn: asyncpg.Connection) -> None:
    for _ in range(3):
        await queries.insert_jobs(conn, [_new()])
    await conn.execute("INSERT INTO queues (name, paused_at) VALUES ('default', now())")
    assert await leases.claim(conn, "w", _spec()) == []
    await conn.execute("UPDATE queues SET paused_at = NULL WHERE name = 'default'")
    assert len(await leases.claim(conn, "w", _spec())) == 3


async def test_claim_pause_of_another_queue_does_not_stop_this_one(
    conn: asyncpg.Connection,
) -> None:
    await queries.insert_jobs(conn, [_new()])
    await conn.execute("INSERT INTO queues (name, paused_at) VALUES ('emails', now())")
    assert len(await leases.claim(conn, "w", _spec())) == 1
