"""Plain (``def``) tasks run on the pool's own threads, one per slot; an attempt that timed out
keeps its thread but never makes a later job time out."""

from __future__ import annotations

import asyncpg

from tests.conftest import AppFactory
from tests.helpers import one, wait_for_status, wait_until


async def test_pool_sync_tasks_run_as_many_at_once_as_there_are_slots(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(concurrency=8)
    body = {"jobs": [{"task": "sleep_sync", "payload": {"seconds": 3}} for _ in range(8)]}
    ids = (await client.post("/jobs/batch", json=body)).json()["ids"]

    async def all_done() -> bool:
        done: int = await db.fetchval(
            "SELECT count(*) FROM jobs WHERE status = 'done' AND id = ANY($1)", ids
        )
        return done == 8

    await wait_until(all_done, 30, "8 sync jobs done")
    spans = await one(
        db,
        "SELECT extract(epoch FROM max(started_at) - min(started_at)) AS start_spread,"
        " extract(epoch FROM max(finished_at) - min(started_at)) AS wall"
        " FROM jobs WHERE id = ANY($1)",
        ids,
    )
    print(
        f"\n8 sync jobs of 3 s, 8 slots: started within {float(spans['start_spread']):.3f} s,"
        f" all done {float(spans['wall']):.2f} s after the first start"
    )
    # All eight started together (Python's shared default executor ran about six at once
    # here: the last two would have started 3 s late), and all were done in about 3 s.
    assert float(spans["start_spread"]) < 1.0
    assert 3.0 <= float(spans["wall"]) < 4.5


async def test_pool_sync_attempts_that_timed_out_never_starve_a_later_job(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(concurrency=2)
    hung = {"task": "sleep_sync", "payload": {"seconds": 30}, "timeout_seconds": 0.2}
    ids = await client.post("/jobs/batch", json={"jobs": [{**hung, "max_attempts": 1}] * 6})
    hung_ids = ids.json()["ids"]
    for job_id in hung_ids:
        job = await wait_for_status(client, job_id, {"failed"}, timeout=20)
        assert job["error"] == "TimeoutError: attempt exceeded timeout_seconds=0.2"
    assert client.pool.threads.abandoned == 6
    quick = await client.post(
        "/jobs", json={"task": "sleep_sync", "payload": {"seconds": 0.2}, "timeout_seconds": 2}
    )
    job = await wait_for_status(client, quick.json()["id"], {"done"}, timeout=10)
    assert (job["result"], job["attempts"]) == ("late", 1)
