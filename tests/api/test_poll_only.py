"""Poll-only mode (``JOBQUEUE_LISTEN=false``, for pgbouncer in transaction mode): no LISTEN
connection; workers and long-polls find other processes' changes by polling. And a database
URL with ``?statement_cache_size=0`` starts (it used to fail with a TypeError)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from sqlalchemy import event

from tests.conftest import AppFactory
from tests.helpers import wait_for_status, wait_until


async def listen_connections(db: asyncpg.Connection) -> int:
    """LISTEN connections open on the test database."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'jobqueue-listen'"
    )
    return count


async def test_app_poll_only_opens_no_listen_connection(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(listen=False)
    assert client.runtime.listener is None
    assert await listen_connections(db) == 0


async def test_readyz_poll_only_has_no_listen_check_and_is_ready(start_app: AppFactory) -> None:
    client = await start_app(listen=False)
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "loops": "ok"}


async def test_pool_poll_only_runs_job_enqueued_by_other_process(start_app: AppFactory) -> None:
    # Another process enqueues: no NOTIFY can reach this pool, only its poll.
    runner = await start_app(listen=False, poll_interval_seconds=0.2)
    enqueuer = await start_app(listen=False, workers_enabled=False)
    created = await enqueuer.post("/jobs", json={"task": "count", "payload": {"n": 1}})
    job = await wait_for_status(runner, created.json()["id"], {"done"}, timeout=5)
    assert (job["status"], job["attempts"], job["result"]) == ("done", 1, {"n": 1})


async def test_wait_poll_only_sees_other_process_finish_within_poll_interval(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(listen=False, workers_enabled=False, poll_interval_seconds=0.2)
    job_id = (await client.post("/jobs", json={"task": "count"})).json()["id"]
    reads = 0

    def count_reads(*args: Any) -> None:
        nonlocal reads
        reads += 1

    # The wait's first read must see the job unfinished: finish it only after that read.
    engine = client.runtime.service.engine.sync_engine
    event.listen(engine, "after_cursor_execute", count_reads)
    waiting = asyncio.create_task(client.get(f"/jobs/{job_id}?wait_seconds=10"))

    async def first_read_done() -> bool:
        return reads >= 1

    await wait_until(first_read_done, 5, "the wait's first read")
    # Another process finishes the job: no "finished" NOTIFY reaches this one.
    finished_at = time.monotonic()
    await db.execute(
        "UPDATE jobs SET status = 'done', attempts = 1, started_at = now(), finished_at = now()"
        " WHERE id = $1",
        job_id,
    )
    response = await waiting
    waited = time.monotonic() - finished_at
    event.remove(engine, "after_cursor_execute", count_reads)
    assert (response.status_code, response.json()["status"]) == (200, "done")
    # Seen at the next poll (0.2 s), not at the 10 s deadline.
    assert waited < 2.0


async def test_app_url_statement_cache_size_zero_starts_listens_and_runs_jobs(
    start_app: AppFactory, database_url: str
) -> None:
    client = await start_app(database_url=f"{database_url}?statement_cache_size=0")
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["checks"]["listen"]) == (200, "ok")
    created = await client.post("/jobs", json={"task": "count", "payload": {"n": 2}})
    job = await wait_for_status(client, created.json()["id"], {"done"}, timeout=5)
    assert (job["status"], job["result"]) == ("done", {"n": 2})


async def test_poll_only_local_finish_wakes_the_long_poll_before_the_poll(
    start_app: AppFactory,
) -> None:
    # An hour-long poll: only the pool's own "finished" hook can end this wait early.
    client = await start_app(listen=False, poll_interval_seconds=3600)
    job = (await client.post("/jobs", json={"task": "block", "payload": {"seconds": 0.3}})).json()
    started = time.monotonic()
    response = await client.get(f"/jobs/{job['id']}", params={"wait_seconds": 30})
    assert response.json()["status"] == "done"
    assert time.monotonic() - started < 5
