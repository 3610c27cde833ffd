"""Database faults in one process: connections refused or terminated, the pool exhausted. The
API answers 503 within a bounded time (never a 500 or a hang) and recovers by itself."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from jobqueue.db.engine import asyncpg_dsn, connect, create_engine
from jobqueue.notify import Listener, QueuesRunnable
from tests.conftest import ADMIN_URL, AppFactory, Runs
from tests.helpers import wait_for_status, wait_until


@contextlib.asynccontextmanager
async def refusing_connections(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """While inside: the database refuses new connections and has none open (every backend
    terminated, from an admin connection to another database). Yields that admin connection."""
    name = make_url(database_url).database
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await terminate_all(admin, database_url)
        yield admin
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def terminate_all(admin: asyncpg.Connection, database_url: str) -> None:
    """Terminate every backend the database has now and wait until they are gone (a LISTEN
    connection may reconnect at once when the database still allows it)."""
    pids = [
        row["pid"]
        for row in await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1", make_url(database_url).database
        )
    ]
    await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)

    async def gone() -> bool:
        left: int = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
        )
        return left == 0

    await wait_until(gone, 10, "every backend terminated")


async def test_api_database_refusing_connections_is_503_within_a_second(
    start_app: AppFactory, database_url: str
) -> None:
    client = await start_app(db_pool_timeout_seconds=5)
    assert (await client.post("/jobs", json={})).status_code == 201

    async with refusing_connections(database_url):
        started = time.monotonic()
        responses = [
            await client.post("/jobs", json={}),
            await client.get("/jobs/1"),
            await client.get("/jobs"),
            await client.get("/readyz"),
        ]
        elapsed = time.monotonic() - started

    assert [r.status_code for r in responses] == [503] * 4
    assert elapsed < 4, f"4 requests took {elapsed:.1f} s"
    assert responses[0].headers["retry-after"] == "1"
    # Fixed words for the client; the driver's message (it names the database) is logged only.
    assert responses[1].json() == {"detail": "the database is not reachable; retry"}
    assert responses[3].json()["checks"]["database"] == "unavailable"

    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await wait_until(ready, 15, "/readyz 200 after the database came back")
    assert (await client.post("/jobs", json={})).status_code == 201


async def test_connect_pooled_connections_terminated_while_idle_next_request_succeeds(
    start_app: AppFactory, database_url: str
) -> None:
    client = await start_app(workers_enabled=False)
    engine = client.runtime.service.engine
    async with connect(engine), connect(engine), connect(engine):
        pass  # three connections now wait in the pool
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await terminate_all(admin, database_url)
    finally:
        await admin.close()

    response = await client.get("/jobs")

    assert response.status_code == 200, response.text


async def test_api_pool_exhausted_is_503_after_pool_timeout_not_a_hang(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False, db_pool_size=1, db_pool_timeout_seconds=0.5)
    engine = client.runtime.service.engine
    # Pool size 1 and as many again of overflow: two checkouts take every connection.
    async with connect(engine), connect(engine):
        started = time.monotonic()
        response = await client.get("/jobs/1")
        waited = time.monotonic() - started

    assert response.status_code == 503
    assert 0.5 <= waited < 2.5
    assert response.json() == {"detail": "every database connection of this service is busy; retry"}
    assert (await client.get("/jobs/1")).status_code == 404


async def test_create_engine_pool_follows_settings(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, db_pool_size=7, db_pool_timeout_seconds=3)
    pool: Any = client.runtime.service.engine.pool
    assert (pool.size(), pool._max_overflow, pool._timeout) == (7, 7, 3)


async def test_notifications_database_refusing_connections_keeps_listening_after(
    database_url: str,
) -> None:
    engine = create_engine(database_url, 1)
    notifications = Listener(asyncpg_dsn(database_url), engine)
    listening = asyncio.create_task(notifications.run())
    got: list[QueuesRunnable] = []
    notifications.subscribe(QueuesRunnable, got.append)

    async def connected() -> bool:
        return notifications.connected

    try:
        await wait_until(connected, 10, "LISTEN connected")
        async with refusing_connections(database_url):

            async def lost() -> bool:
                return not notifications.connected

            await wait_until(lost, 10, "LISTEN connection lost")
        await wait_until(connected, 15, "LISTEN reconnected")
        async with connect(engine) as conn:
            await conn.execute("SELECT pg_notify('jobqueue', 'q:after')")

        async def delivered() -> bool:
            return got == [QueuesRunnable(frozenset({"after"}))]

        await wait_until(delivered, 5, "a NOTIFY after the outage delivered")
        assert not listening.done()
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await engine.dispose()


async def test_pool_database_refusing_connections_survives_and_runs_jobs_after(
    client: httpx.AsyncClient, database_url: str
) -> None:
    async with refusing_connections(database_url):
        # The fault itself: for one second every claim (0.2 s poll) and rescue round (0.2 s)
        # meets a database that refuses connections.
        await asyncio.sleep(1.0)
        assert (await client.get("/readyz")).status_code == 503

    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await wait_until(ready, 15, "/readyz 200 after the outage")
    created = await client.post("/jobs", json={"task": "echo"})
    job = (await client.get(f"/jobs/{created.json()['id']}?wait_seconds=10")).json()
    assert job["status"] == "done"


async def test_pool_outage_longer_than_the_lease_every_running_job_ends_done(
    start_app: AppFactory, database_url: str, runs: Runs
) -> None:
    client = await start_app(lease_seconds=1.5, rescue_interval_seconds=0.2, concurrency=5)
    body = {"jobs": [{"task": "block", "payload": {"seconds": 2}} for _ in range(5)]}
    ids = (await client.post("/jobs/batch", json=body)).json()["ids"]

    async def all_running() -> bool:
        return len(runs.by_job) == 5

    await wait_until(all_running, 10, "5 jobs running")
    async with refusing_connections(database_url):
        # Longer than the lease: no heartbeat gets through, every lease expires.
        await asyncio.sleep(3.0)
    started = time.monotonic()

    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await wait_until(ready, 10, "/readyz 200 after the outage")
    assert time.monotonic() - started < 10
    for job_id in ids:
        job = await wait_for_status(client, job_id, {"done", "failed"}, timeout=30)
        assert job["status"] == "done", job
    assert (await client.get("/readyz")).json()["checks"]["loops"] == "ok"
    assert client.runtime.loops.down() == {}
