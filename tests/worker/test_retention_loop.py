"""Finished jobs in a running app: the pruner deletes them once they are older than their age
(with its metric), and the overview's throughput counts the ones this process ended."""

from __future__ import annotations

import asyncpg

from jobqueue.maintenance import Supervisor
from tests.conftest import AppFactory
from tests.helpers import wait_until


async def test_app_done_job_pruned_after_its_retention_age(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(retention_done_seconds=0.5, retention_interval_seconds=0.1)
    created = await client.post("/jobs", json={"task": "echo", "payload": {"n": 1}})
    job_id = created.json()["id"]
    done = await client.get(f"/jobs/{job_id}", params={"wait_seconds": "10"})
    assert done.json()["status"] == "done"

    async def gone() -> bool:
        count: int = await db.fetchval("SELECT count(*) FROM jobs WHERE id = $1", job_id)
        return count == 0

    await wait_until(gone, timeout=10, what="the done job to be pruned")
    assert (await client.get(f"/jobs/{job_id}")).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert 'jobqueue_jobs_pruned_total{queue="default",status="done"} 1.0' in metrics


async def test_app_every_age_zero_runs_no_pruner(start_app: AppFactory) -> None:
    client = await start_app(
        retention_done_seconds=0, retention_cancelled_seconds=0, retention_failed_seconds=0
    )
    loops = client.runtime.loops
    assert isinstance(loops, Supervisor)
    assert "pruner" not in loops.states
    assert "rescuer" in loops.states


async def test_overview_throughput_counts_jobs_this_process_ran(start_app: AppFactory) -> None:
    client = await start_app()
    ids = [(await client.post("/jobs", json={"task": "echo"})).json()["id"] for _ in range(3)]
    failing = await client.post("/jobs", json={"task": "fail", "max_attempts": 1})
    for job_id in [*ids, failing.json()["id"]]:
        await client.get(f"/jobs/{job_id}", params={"wait_seconds": "10"})
    data = (await client.get("/ui/api/overview")).json()
    assert (data["done_last_hour"], data["failed_last_hour"]) == (3, 1)
