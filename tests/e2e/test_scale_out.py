"""Scale out on one database: one ``jobqueue api`` and two ``jobqueue worker`` processes.

20,000 jobs enqueued over HTTP (batches of 1,000) through the API process, which has no task
code of its own (it accepts ``record`` because the workers announce it): every job runs exactly
once, the work is spread over both workers, the registry lists all three processes, and a pause
of the queue stops the claims of both workers within a second."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from tests.e2e.procs import ServerFactory, read_records
from tests.helpers import wait_until

JOBS = 20_000
BATCH = 1_000


async def test_scale_out_api_and_two_workers_run_every_job_once(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    common = {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_CONCURRENCY": "20"}
    workers = [await start_server.start(common, command="worker") for _ in range(2)]
    api = await start_server.start({**common, "JOBQUEUE_TASK_MODULES": ""}, command="api")
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=api.url, timeout=30.0) as client:
        for first in range(0, JOBS, BATCH):
            jobs = [{"task": "record", "payload": {"n": n}} for n in range(first, first + BATCH)]
            response = await client.post("/jobs/batch", json={"jobs": jobs})
            assert response.status_code == 201, response.text

        async def all_done() -> bool:
            done: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'done'")
            return done == JOBS

        await wait_until(all_done, timeout=240, what=f"{JOBS} jobs done")
        seconds = time.perf_counter() - started
        runs = read_records(record_file)
        assert len(runs) == JOBS
        assert [job for job, attempts in runs.items() if attempts != [1]] == []
        shares = Counter(row["worker_id"] for row in await db.fetch("SELECT worker_id FROM jobs"))
        assert len(shares) == 2
        assert min(shares.values()) > JOBS * 0.2, shares
        print(f"scale-out: {JOBS} jobs in {seconds:.1f} s, per worker {dict(shares)}")

        listed = (await client.get("/workers")).json()["items"]
        assert sorted(p["role"] for p in listed) == ["api", "worker", "worker"]
        assert {p["pid"] for p in listed} == {w.proc.pid for w in [*workers, api]}

        await _pause_stops_both_workers(client, db)


async def _pause_stops_both_workers(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    jobs = [{"task": "record", "payload": {"seconds": 0.05}} for _ in range(BATCH)]
    assert (await client.post("/jobs/batch", json={"jobs": jobs})).status_code == 201

    async def flowing() -> bool:
        running: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'in_progress'")
        return running > 0

    await wait_until(flowing, timeout=10, what="the new jobs to run")
    assert (await client.post("/queues/default/pause")).status_code == 200
    paused_at = await db.fetchval("SELECT paused_at FROM queues WHERE name = 'default'")

    async def drained() -> bool:
        running: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'in_progress'")
        return running == 0

    await wait_until(drained, timeout=10, what="the running jobs to finish")
    # A claim that began in the millisecond between the pause's now() and its commit may still
    # start a job; none may start a second after it (the bound).
    late = await db.fetchval(
        "SELECT count(*) FROM jobs WHERE started_at > $1::timestamptz + interval '1 second'",
        paused_at,
    )
    waiting = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'todo'")
    assert late == 0
    assert waiting > 0
    assert (await client.post("/queues/default/resume")).status_code == 200

    async def finished() -> bool:
        todo: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status <> 'done'")
        return todo == 0

    await wait_until(finished, timeout=60, what="the paused jobs to run after resume")
