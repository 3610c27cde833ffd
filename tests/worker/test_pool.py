"""The worker pool against real PostgreSQL: exactly-once under normal running, leases,
heartbeats, timeouts, graceful shutdown, NOTIFY wake-ups."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import AppFactory, Runs
from tests.helpers import one, wait_for_status, wait_until


async def _insert(db: asyncpg.Connection, n: int, task: str = "count", payload: str = "{}") -> None:
    await db.execute(
        "INSERT INTO jobs (task, payload) SELECT $1, $2::jsonb FROM generate_series(1, $3)",
        task,
        payload,
        n,
    )


async def _count(db: asyncpg.Connection, status: str) -> int:
    value: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = $1", status)
    return value


async def test_pool_2000_jobs_concurrency_10_each_runs_exactly_once(
    start_app: AppFactory, db: asyncpg.Connection, runs: Runs
) -> None:
    await _insert(db, 2000)
    started = time.perf_counter()
    await start_app(concurrency=10)

    async def all_done() -> bool:
        return await _count(db, "done") == 2000

    await wait_until(all_done, timeout=60, what="2000 jobs done")
    elapsed = time.perf_counter() - started
    print(f"\n2000 count jobs, concurrency 10: {2000 / elapsed:.0f} jobs/s")
    assert len(runs.by_job) == 2000
    assert set(runs.by_job.values()) == {1}
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE attempts = 1") == 2000


async def test_pool_two_pools_one_database_no_job_runs_twice(
    start_app: AppFactory, db: asyncpg.Connection, runs: Runs
) -> None:
    await _insert(db, 2000)
    first = await start_app(concurrency=10)
    second = await start_app(concurrency=10)

    async def all_done() -> bool:
        return await _count(db, "done") == 2000

    await wait_until(all_done, timeout=60, what="2000 jobs done")
    assert set(runs.by_job.values()) == {1}
    workers = await db.fetch("SELECT worker_id, count(*) AS n FROM jobs GROUP BY worker_id")
    pools = {first.pool.config.worker_id, second.pool.config.worker_id}
    assert {row["worker_id"] for row in workers} == pools
    assert sum(row["n"] for row in workers) == 2000


async def test_pool_sync_task_runs_in_thread_and_returns_result(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    response = await client.post("/jobs", json={"task": "count_sync", "payload": {"k": 1}})
    job = await wait_for_status(client, response.json()["id"], {"done"})
    assert job["result"] == {"k": 1}
    assert runs.by_job == {job["id"]: 1}


async def test_pool_sleep_task_returns_slept_seconds(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"task": "sleep", "payload": {"seconds": 0.05}})
    job = await wait_for_status(client, response.json()["id"], {"done"})
    assert job["result"] == {"slept_seconds": 0.05}


async def test_pool_sleep_task_bad_seconds_fails_without_retry(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # The API refuses this payload (422); a row written some other way fails at run time.
    job_id = await db.fetchval(
        """INSERT INTO jobs (task, payload) VALUES ('sleep', '{"seconds": "x"}') RETURNING id"""
    )
    await db.execute("SELECT pg_notify('jobqueue', 'q:default')")
    job = await wait_for_status(client, job_id, {"failed"})
    assert job["attempts"] == 1
    assert job["error"].startswith("Discard: payload.seconds must be a number")


async def test_pool_attempt_past_timeout_fails_with_timeout_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/jobs",
        json={
            "task": "block",
            "payload": {"seconds": 30},
            "timeout_seconds": 0.2,
            "max_attempts": 1,
        },
    )
    job = await wait_for_status(client, response.json()["id"], {"failed"})
    assert job["error"].startswith("TimeoutError: attempt exceeded timeout_seconds=0.2")


async def test_pool_heartbeat_keeps_lease_of_job_longer_than_lease(
    start_app: AppFactory, runs: Runs, db: asyncpg.Connection
) -> None:
    client = await start_app(lease_seconds=1.0, rescue_interval_seconds=0.1)
    response = await client.post("/jobs", json={"task": "block", "payload": {"seconds": 2}})
    job = await wait_for_status(client, response.json()["id"], {"done"})
    assert job["result"] == "finished"
    assert job["attempts"] == 1
    assert job["rescues"] == 0
    assert runs.by_job == {job["id"]: 1}


async def test_pool_notify_wakes_other_process_before_its_poll(
    start_app: AppFactory, runs: Runs
) -> None:
    producer = await start_app(workers_enabled=False)
    consumer = await start_app(poll_interval_seconds=3600)
    coordinator = consumer.pool.coordinator

    async def idle_and_listening() -> bool:
        listener = consumer.runtime.listener
        listening = listener is not None and listener.connected
        return listening and coordinator.rounds >= 1 and not coordinator.wanted

    # The consumer's start-up claim is done and it listens: from now on, with a poll of an
    # hour, only the producer's NOTIFY can make it claim.
    await wait_until(idle_and_listening, 10, "the consumer idle and listening")
    rounds = coordinator.rounds
    response = await producer.post("/jobs", json={"task": "count"})
    job = await wait_for_status(producer, response.json()["id"], {"done"}, timeout=10)
    assert runs.by_job == {job["id"]: 1}
    assert coordinator.rounds > rounds


async def test_pool_listen_connection_terminated_reconnects_and_wakes(
    start_app: AppFactory, runs: Runs, db: asyncpg.Connection
) -> None:
    producer = await start_app(workers_enabled=False)
    consumer = await start_app(poll_interval_seconds=3600)
    listener = consumer.runtime.listener
    assert listener is not None

    async def listening() -> bool:
        return bool(listener.connected)

    await wait_until(listening, timeout=10, what="LISTEN connection")
    terminated = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'jobqueue-listen'"
    )
    assert terminated == 2  # the producer's and the consumer's

    async def relistening() -> bool:
        count: int = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'jobqueue-listen'"
        )
        return count == 2 and bool(listener.connected)

    await wait_until(relistening, timeout=15, what="LISTEN re-established")
    response = await producer.post("/jobs", json={"task": "count"})
    job = await wait_for_status(producer, response.json()["id"], {"done"}, timeout=10)
    assert runs.by_job == {job["id"]: 1}


async def test_pool_stop_with_grace_zero_releases_running_jobs_without_counting_attempt(
    start_app: AppFactory, db: asyncpg.Connection, runs: Runs
) -> None:
    client = await start_app(concurrency=3, shutdown_grace_seconds=0)
    ids = [
        (await client.post("/jobs", json={"task": "block", "payload": {"seconds": 60}})).json()[
            "id"
        ]
        for _ in range(5)
    ]

    async def three_running() -> bool:
        return len(runs.by_job) == 3

    await wait_until(three_running, timeout=10, what="3 jobs running")
    await client.runtime.stop()
    rows = await db.fetch("SELECT id, status, attempts, worker_id FROM jobs ORDER BY id")
    assert [row["id"] for row in rows] == ids
    assert [(row["status"], row["attempts"], row["worker_id"]) for row in rows] == [
        ("todo", 0, None)
    ] * 5


async def test_pool_stop_lets_jobs_in_hand_finish_within_grace(
    start_app: AppFactory, db: asyncpg.Connection, runs: Runs
) -> None:
    client = await start_app(concurrency=2, shutdown_grace_seconds=30)
    response = await client.post("/jobs", json={"task": "block", "payload": {"seconds": 0.5}})

    async def running() -> bool:
        return len(runs.by_job) == 1

    await wait_until(running, timeout=10, what="job running")
    await client.runtime.stop()
    row = await one(db, "SELECT status, result FROM jobs WHERE id = $1", response.json()["id"])
    assert (row["status"], row["result"]) == ("done", '"finished"')  # jsonb as text


async def test_pool_outcome_write_error_is_retried_not_fatal(
    start_app: AppFactory, monkeypatch: pytest.MonkeyPatch, runs: Runs
) -> None:
    from jobqueue.leases import _store

    raised: list[Exception] = []

    def failing_once(real: Any) -> Any:
        async def write(*args: Any, **kwargs: Any) -> Any:
            if not raised:
                raised.append(asyncpg.DeadlockDetectedError("deadlock detected (injected)"))
                raise raised[0]
            return await real(*args, **kwargs)

        return write

    monkeypatch.setattr(_store, "finish", failing_once(_store.finish))
    client = await start_app()
    response = await client.post("/jobs", json={"task": "count"})
    job = await wait_for_status(client, response.json()["id"], {"done"}, timeout=10)
    assert job["attempts"] == 1
    assert runs.by_job == {job["id"]: 1}
    assert len(raised) == 1
    # The claim loop raised, was restarted by the supervisor, and wrote the outcome after.
    assert client.runtime.loops.states["claim"].restarts == 1  # type: ignore[attr-defined]

    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await wait_until(ready, 10, "/readyz 200 after the restart")


async def test_pool_idle_claims_only_at_the_poll_interval(
    start_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobqueue.leases import _store

    claims: list[float] = []
    real = _store.claim

    async def counting(*args: Any, **kwargs: Any) -> Any:
        claims.append(asyncio.get_running_loop().time())
        return await real(*args, **kwargs)

    monkeypatch.setattr(_store, "claim", counting)
    await start_app(poll_interval_seconds=0.5)
    # An empty claim must not wake the coordinator again: about 2 claims per second, not
    # thousands (regression: a returned reservation woke it, and it spun).
    await asyncio.sleep(2.0)
    assert 2 <= len(claims) <= 8
