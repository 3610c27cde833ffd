"""A task that ignores cancellation holds neither its slot nor the shutdown."""

from __future__ import annotations

import signal
import time

import asyncpg
import httpx

from tests.e2e.procs import CLEAN_SIGTERM_EXIT, ServerFactory
from tests.helpers import one, wait_until


async def test_serve_sigterm_with_a_task_ignoring_cancellation_exits_and_releases(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_SHUTDOWN_GRACE_SECONDS": "2"}
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
        ids = [
            (await client.post("/jobs", json={"task": task})).json()["id"]
            for task in ("stubborn", "stubborn", "echo")
        ]

    async def running() -> bool:
        busy: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'in_progress'")
        return busy == 2

    await wait_until(running, 10, "the two stubborn jobs running")
    started = time.monotonic()
    assert await server.stop(signal.SIGTERM, timeout=30) == CLEAN_SIGTERM_EXIT
    assert time.monotonic() - started < 20
    rows = await db.fetch("SELECT id, status, attempts FROM jobs ORDER BY id")
    assert [(r["id"], r["status"], r["attempts"]) for r in rows] == [
        (ids[0], "todo", 0),
        (ids[1], "todo", 0),
        (ids[2], "done", 1),
    ]


async def test_serve_task_ignoring_its_timeout_is_failed_and_its_slot_freed(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_CONCURRENCY": "1",
            "JOBQUEUE_LEASE_SECONDS": "3",
        }
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        stuck = await client.post(
            "/jobs", json={"task": "stubborn", "timeout_seconds": 1, "max_attempts": 1}
        )
        late = await client.post(
            "/jobs",
            json={
                "task": "stubborn",
                "payload": {"seconds": 2},
                "timeout_seconds": 1,
                "max_attempts": 1,
            },
        )

        async def both_failed() -> bool:
            failed: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'failed'")
            return failed == 2

        await wait_until(both_failed, 40, "both stubborn jobs failed")
        row = await one(db, "SELECT error FROM jobs WHERE id = $1", stuck.json()["id"])
        assert row["error"] == (
            "TimeoutError: attempt exceeded timeout_seconds=1 and ignored being cancelled"
        )
        row = await one(db, "SELECT error FROM jobs WHERE id = $1", late.json()["id"])
        assert row["error"] == (
            "TimeoutError: attempt exceeded timeout_seconds=1 and ignored being cancelled"
        )
        # The one slot is free again: a new job runs.
        fresh = (await client.post("/jobs", json={"task": "echo"})).json()["id"]
        job = (await client.get(f"/jobs/{fresh}", params={"wait_seconds": 10})).json()
        assert job["status"] == "done"
    assert "attempt_abandoned" in server.tail(400)
