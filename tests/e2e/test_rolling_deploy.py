"""A rolling deploy: only some processes have a new task. A process claims only jobs of tasks
it has, so no attempt is spent by a replica that lacks the task, and a job no live process can
run waits in ``todo``, counted and shown, never failed for it."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.procs import TASK_MODULE, ServerFactory
from tests.helpers import wait_until

NEW_MODULE = "tests.e2e.e2e_new_tasks"


def _without_worker(text: str) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["queue"], sample.labels["task"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "jobqueue_jobs_without_worker"
    }


async def test_serve_only_the_process_with_the_task_claims_its_jobs(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    common = {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_CONCURRENCY": "4"}
    new = await start_server.start(
        {**common, "JOBQUEUE_TASK_MODULES": f"{TASK_MODULE},{NEW_MODULE}"}
    )
    old = await start_server.start(common)
    async with httpx.AsyncClient(base_url=new.url, timeout=10.0) as client:
        created = await asyncio.gather(
            *(
                client.post("/jobs", json={"task": "new_feature", "payload": {"seconds": 0.1}})
                for _ in range(20)
            )
        )
    ids = [response.json()["id"] for response in created]

    async def all_done() -> bool:
        done: int = await db.fetchval(
            "SELECT count(*) FROM jobs WHERE status = 'done' AND id = ANY($1)", ids
        )
        return done == 20

    await wait_until(all_done, 30, "20 new_feature jobs done")
    rows = await db.fetch("SELECT attempts, rescues, worker_id FROM jobs WHERE id = ANY($1)", ids)
    assert [row["attempts"] for row in rows] == [1] * 20
    assert [row["rescues"] for row in rows] == [0] * 20
    workers = {row["worker_id"] for row in rows}
    assert len(workers) == 1
    assert next(iter(workers)).split(":")[1] == str(new.proc.pid)
    assert await db.fetchval("SELECT count(*) FROM job_attempts") == 0

    # The only process with the task stops; an API-only process that knows it takes new jobs.
    assert await new.stop(signal.SIGTERM) == 0
    api = await start_server.start(
        {
            **common,
            "JOBQUEUE_TASK_MODULES": f"{TASK_MODULE},{NEW_MODULE}",
            "JOBQUEUE_WORKERS_ENABLED": "false",
        }
    )
    async with httpx.AsyncClient(base_url=api.url, timeout=10.0) as client:
        later = [
            (await client.post("/jobs", json={"task": "new_feature"})).json()["id"]
            for _ in range(5)
        ]
    async with httpx.AsyncClient(base_url=old.url, timeout=10.0) as client:

        async def counted() -> bool:
            text = (await client.get("/metrics")).text
            return _without_worker(text).get(("default", "new_feature")) == 5.0

        await wait_until(counted, 15, "5 jobs without a worker in the old replica's metrics")
        overview = (await client.get("/ui/api/overview")).json()
        assert overview["without_worker"] == [
            {"queue": "default", "task": "new_feature", "jobs": 5}
        ]
    rows = await db.fetch("SELECT status, attempts FROM jobs WHERE id = ANY($1)", later)
    assert [tuple(row) for row in rows] == [("todo", 0)] * 5
    # Still waiting after several of the old replica's polls (0.2 s): never claimed, never failed.
    await asyncio.sleep(1.0)
    rows = await db.fetch("SELECT status, attempts FROM jobs WHERE id = ANY($1)", later)
    assert [tuple(row) for row in rows] == [("todo", 0)] * 5
