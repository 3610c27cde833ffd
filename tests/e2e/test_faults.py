"""Faults with real processes on a real PostgreSQL: a replica killed with jobs in hand while
another keeps working, and a database outage (every connection terminated, new ones refused).
Each test ends by asserting the exact state and run count of every job."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from tests.conftest import ADMIN_URL
from tests.e2e.procs import ServerFactory, read_records
from tests.e2e.support import rows, wait_all_status, wait_running
from tests.helpers import wait_until


async def enqueue_batch(base_url: str, count: int, payload: dict[str, Any]) -> list[int]:
    """Create ``count`` ``record`` jobs with ``payload`` in one batch; their ids."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        response = await client.post(
            "/jobs/batch", json={"jobs": [{"task": "record", "payload": payload}] * count}
        )
    assert response.status_code == 201, response.text
    ids: list[int] = response.json()["ids"]
    return ids


async def test_serve_one_of_two_killed_with_50_in_progress_reruns_exactly_those_once(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    base = {
        "JOBQUEUE_DATABASE_URL": database_url,
        "JOBQUEUE_LEASE_SECONDS": "2",
        "JOBQUEUE_RESCUE_INTERVAL_SECONDS": "0.5",
        "JOBQUEUE_SHUTDOWN_GRACE_SECONDS": "1",
    }
    doomed = await start_server.start({**base, "JOBQUEUE_CONCURRENCY": "50"})
    # The first run of these would last a minute; the run after the rescue is short.
    first = await enqueue_batch(doomed.url, 50, {"first_seconds": 60, "seconds": 0.1})
    await wait_running(db, record_file, 50)
    survivor = await start_server.start({**base, "JOBQUEUE_CONCURRENCY": "10"})
    second = await enqueue_batch(survivor.url, 40, {"seconds": 0.3})

    async def survivor_started() -> bool:
        return any(job_id in read_records(record_file) for job_id in second)

    await wait_until(survivor_started, 10, "the survivor running jobs of its own")
    assert await doomed.stop(signal.SIGKILL) == -signal.SIGKILL
    killed_at = await db.fetchval("SELECT now()")
    at_kill = await db.fetch(
        "SELECT id, worker_id, lease_expires_at FROM jobs WHERE status = 'in_progress'"
    )
    doomed_worker = {r["worker_id"] for r in at_kill if r["id"] in first}
    assert len(doomed_worker) == 1
    killed = {r["id"] for r in at_kill if r["worker_id"] in doomed_worker}
    lease_end = {r["id"]: r["lease_expires_at"] for r in at_kill if r["id"] in killed}

    ids = sorted(first + second)
    await wait_all_status(db, "done", len(ids), timeout=30)

    assert killed == set(first)
    final = await rows(db)
    assert sorted(final) == ids
    assert read_records(record_file) == {i: [1, 2] if i in killed else [1] for i in ids}
    assert {i: (r["status"], r["attempts"], r["rescues"]) for i, r in final.items()} == {
        i: ("done", 2, 1) if i in killed else ("done", 1, 0) for i in ids
    }
    survivor_worker = {r["worker_id"] for r in final.values()}
    assert len(survivor_worker) == 1
    assert survivor_worker.isdisjoint(doomed_worker)
    history = await db.fetch(
        "SELECT a.job_id, a.attempt, a.outcome, a.worker_id, a.finished_at, j.started_at"
        " FROM job_attempts a JOIN jobs j ON j.id = a.job_id ORDER BY a.job_id"
    )
    assert {r["job_id"]: (r["attempt"], r["outcome"]) for r in history} == dict.fromkeys(
        killed, (1, "rescued")
    )
    assert len(history) == len(killed)
    for r in history:
        # Rescued only once the lease had run out, and run again only after the rescue.
        assert r["worker_id"] in doomed_worker
        assert lease_end[r["job_id"]] <= r["finished_at"] <= r["started_at"]
    finished_after_kill = await db.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1::bigint[]) AND finished_at > $2",
        second,
        killed_at,
    )
    assert finished_after_kill > 0  # the survivor kept working while the other was dead


async def listen_connections(db: asyncpg.Connection) -> int:
    """How many ``jobqueue-listen`` connections are open on the test database."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'jobqueue-listen'"
    )
    return count


async def probe(client: httpx.AsyncClient, method: str, url: str) -> tuple[str, int, float]:
    """One API call: ``(what, status, seconds)``; a transport error is status 0."""
    started = time.monotonic()
    try:
        response = await client.request(method, url, json={} if method == "POST" else None)
        status = response.status_code
    except httpx.HTTPError:
        status = 0
    return f"{method} {client.base_url}{url}", status, time.monotonic() - started


async def test_serve_database_outage_answers_503_recovers_and_loses_nothing(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    base = {
        "JOBQUEUE_DATABASE_URL": database_url,
        # Far longer than the test: a job picked up quickly was woken by LISTEN/NOTIFY.
        "JOBQUEUE_POLL_INTERVAL_SECONDS": "30",
        "JOBQUEUE_LEASE_SECONDS": "5",
        "JOBQUEUE_RESCUE_INTERVAL_SECONDS": "0.5",
        "JOBQUEUE_DB_POOL_TIMEOUT_SECONDS": "2",
    }
    worker = await start_server.start({**base, "JOBQUEUE_CONCURRENCY": "10"})
    api = await start_server.start({**base, "JOBQUEUE_WORKERS_ENABLED": "false"})

    async def both_listening() -> bool:
        return await listen_connections(db) == 2

    await wait_until(both_listening, 10, "both processes listening")
    ids = await enqueue_batch(api.url, 30, {"seconds": 1.5})
    await wait_running(db, record_file, 10)
    running_at_outage = {i for i, r in (await rows(db)).items() if r["status"] == "in_progress"}

    name = make_url(database_url).database
    observer = await db.fetchval("SELECT pg_backend_pid()")
    admin = await asyncpg.connect(ADMIN_URL)
    terminated = 0

    async def terminate_for(seconds: float) -> None:
        nonlocal terminated
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            terminated += await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> $2",
                name,
                observer,
            )
            await asyncio.sleep(0.1)

    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await terminate_for(0.3)
        async with (
            httpx.AsyncClient(base_url=worker.url, timeout=15) as w,
            httpx.AsyncClient(base_url=api.url, timeout=15) as a,
        ):
            _, probes = await asyncio.gather(
                terminate_for(2.0),
                asyncio.gather(
                    probe(a, "POST", "/jobs"),
                    probe(a, "GET", f"/jobs/{ids[0]}"),
                    probe(w, "GET", "/jobs"),
                    probe(a, "GET", "/readyz"),
                    probe(w, "GET", "/readyz"),
                ),
            )
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    assert terminated >= 2  # at least each process's LISTEN connection, plus pooled ones
    assert [(what, status) for what, status, _ in probes] == [(what, 503) for what, _, _ in probes]
    assert max(seconds for _, _, seconds in probes) < 5

    async def both_ready() -> bool:
        async with httpx.AsyncClient(timeout=5) as client:
            for server in (worker, api):
                if (await client.get(f"{server.url}/readyz")).status_code != 200:
                    return False
        return True

    await wait_until(both_ready, 20, "both processes ready again")
    await wait_until(both_listening, 20, "LISTEN restored in both processes")
    await wait_all_status(db, "done", len(ids), timeout=30)

    # The worker is idle now: only a NOTIFY (or the 30 s poll) can make it claim this one.
    enqueued = time.monotonic()
    [late] = await enqueue_batch(api.url, 1, {"seconds": 0})
    await wait_all_status(db, "done", len(ids) + 1, timeout=10)
    assert time.monotonic() - enqueued < 5

    final = await rows(db)
    runs = read_records(record_file)
    everyone = [*ids, late]
    assert sorted(final) == sorted(everyone)
    assert {i: r["status"] for i, r in final.items()} == dict.fromkeys(everyone, "done")
    # A job runs again only when its lease was lost during the outage and it was rescued:
    # then its attempts count both runs. Every other job ran exactly once.
    rescued = {i for i, r in final.items() if r["rescues"]}
    assert rescued <= running_at_outage
    assert {i: runs[i] for i in everyone} == {i: [1, 2] if i in rescued else [1] for i in everyone}
    assert {i: (r["attempts"], r["rescues"]) for i, r in final.items()} == {
        i: (2, 1) if i in rescued else (1, 0) for i in everyone
    }
