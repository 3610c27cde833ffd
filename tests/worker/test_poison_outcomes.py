"""Outcomes PostgreSQL could not store as they are (lone surrogates, delays past year 9999)
are cleaned or clamped: they never stop the claim loop or hold back other jobs' results."""

from __future__ import annotations

import asyncpg

from jobqueue import JobContext, RetryLater
from jobqueue.tasks.registry import TaskRegistry
from tests.conftest import AppFactory, Runs
from tests.helpers import one, wait_until

BAD = b"bad \xff byte".decode("utf-8", "surrogateescape")


async def test_pool_odd_errors_and_results_never_stop_the_other_jobs(
    start_app: AppFactory, registry: TaskRegistry, db: asyncpg.Connection, runs: Runs
) -> None:
    async def odd_error(ctx: JobContext) -> None:
        raise RuntimeError(BAD)

    async def odd_result(ctx: JobContext) -> dict[str, str]:
        return {BAD: BAD}

    async def forever(ctx: JobContext) -> None:
        raise RetryLater(float("inf"), "come back never")

    registry.register("odd_error", odd_error)
    registry.register("odd_result", odd_result)
    registry.register("forever", forever)
    client = await start_app()
    jobs = (
        [{"task": "count"}] * 3
        + [
            {"task": "odd_error", "max_attempts": 1},
            {"task": "odd_result", "max_attempts": 1},
            {"task": "forever", "max_attempts": 2},
        ]
        + [{"task": "count"}] * 3
    )
    ids = (await client.post("/jobs/batch", json={"jobs": jobs})).json()["ids"]

    async def settled() -> bool:
        moving: int = await db.fetchval(
            "SELECT count(*) FROM jobs WHERE status = 'in_progress' OR"
            " (status = 'todo' AND task <> 'forever')"
        )
        return moving == 0

    await wait_until(settled, 15, "every job settled")
    rows = {r["task"]: r for r in await db.fetch("SELECT * FROM jobs WHERE task <> 'count'")}
    assert rows["odd_error"]["status"] == "failed"
    assert rows["odd_error"]["error"] == "RuntimeError: bad \ufffd byte"
    assert rows["odd_result"]["status"] == "failed"
    assert "lone surrogate" in rows["odd_result"]["error"]
    retried = rows["forever"]
    assert (retried["status"], retried["attempts"]) == ("todo", 1)
    wait = await one(db, "SELECT run_at - now() AS wait FROM jobs WHERE id = $1", retried["id"])
    assert 3650 <= wait["wait"].days <= 3661
    counted = [i for i, spec in zip(ids, jobs, strict=True) if spec["task"] == "count"]
    assert {i: runs.by_job.get(i) for i in counted} == dict.fromkeys(counted, 1)
    done = await db.fetchval("SELECT count(*) FROM jobs WHERE task = 'count' AND status = 'done'")
    assert done == 6
    assert client.runtime.loops.states["claim"].restarts == 0  # type: ignore[attr-defined]
    # The job is readable and cancellable (its run_at is in range).
    job = (await client.get(f"/jobs/{retried['id']}")).json()
    assert job["status"] == "todo"
    cancelled = await client.post(f"/jobs/{retried['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
