"""A paused queue's jobs wait while other queues run; resuming wakes the claimer at once."""

from __future__ import annotations

import asyncpg

from tests.conftest import AppFactory


async def test_paused_queue_jobs_wait_then_run_after_resume(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(queues="default,emails")
    assert (await client.post("/queues/default/pause")).status_code == 200
    waiting = (await client.post("/jobs", json={"task": "echo"})).json()["id"]
    other = (await client.post("/jobs", json={"task": "echo", "queue": "emails"})).json()["id"]
    # The emails job was enqueued after the paused one and is done: claims ran meanwhile.
    done = await client.get(f"/jobs/{other}", params={"wait_seconds": "10"})
    assert done.json()["status"] == "done"
    assert (await client.get(f"/jobs/{waiting}")).json()["status"] == "todo"

    assert (await client.post("/queues/default/resume")).status_code == 200
    finished = await client.get(f"/jobs/{waiting}", params={"wait_seconds": "10"})
    assert finished.json()["status"] == "done"
    resumed_first: bool = await db.fetchval(
        "SELECT q.updated_at <= j.started_at FROM queues q, jobs j"
        " WHERE q.name = 'default' AND j.id = $1",
        waiting,
    )
    assert resumed_first
