"""Due work wakes the claimer: a retry runs about its backoff later, not at the next poll."""

from __future__ import annotations

import asyncpg

from tests.conftest import AppFactory
from tests.helpers import wait_for_status


async def test_pool_sixty_failures_with_short_backoff_reach_the_last_attempt_fast(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    # A poll of 5 s: only the timer to the retry's run_at can make 60 attempts in under 8 s.
    client = await start_app(
        poll_interval_seconds=5.0, backoff_base_seconds=0.01, backoff_max_seconds=0.05
    )
    response = await client.post(
        "/jobs", json={"task": "flaky", "payload": {"fail_times": 100}, "max_attempts": 60}
    )
    job = await wait_for_status(client, response.json()["id"], {"failed"}, timeout=20)
    assert job["attempts"] == 60
    seconds = await db.fetchval(
        "SELECT extract(epoch FROM finished_at - created_at) FROM jobs WHERE id = $1", job["id"]
    )
    print(f"\n60 attempts with a 10-50 ms backoff: last attempt ended {float(seconds):.2f} s in")
    assert float(seconds) < 8.0
    history = await db.fetchval(
        "SELECT count(*) FROM job_attempts WHERE job_id = $1 AND outcome = 'retried'", job["id"]
    )
    assert history == 59
