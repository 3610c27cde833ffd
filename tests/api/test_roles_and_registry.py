"""Process roles (serve, worker, api), the registry every process writes, ``GET /workers``, and
enqueue accepting what live processes announce."""

from __future__ import annotations

import asyncpg
import pytest

from jobqueue.settings import Settings
from tests.conftest import AppClient, AppFactory
from tests.helpers import other_process, wait_until


async def _announced(client: AppClient, count: int = 1) -> list[dict[str, object]]:
    async def listed() -> bool:
        return len((await client.get("/workers")).json()["items"]) >= count

    await wait_until(listed, timeout=10, what="the registry rows")
    items: list[dict[str, object]] = (await client.get("/workers")).json()["items"]
    return items


async def test_workers_lists_this_serve_process_with_its_slots(start_app: AppFactory) -> None:
    client = await start_app(queues="default=4,emails=2")
    [row] = await _announced(client)
    assert row["role"] == "serve"
    assert row["queues"] == {"default": 4, "emails": 2}
    assert "echo" in row["tasks"]  # type: ignore[operator]
    assert row["busy"] == 0
    body = (await client.get("/workers")).json()
    assert (body["slots"], body["busy"]) == (6, 0)


async def test_api_only_process_announces_itself_without_queues(start_app: AppFactory) -> None:
    client = await start_app(role="api")
    [row] = await _announced(client)
    assert (row["role"], row["queues"], row["tasks"]) == ("api", {}, [])
    assert client.runtime.pool is None


async def test_worker_role_serves_no_jobs_api_but_health_and_metrics(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(role="worker")
    assert (await client.get("/jobs")).status_code == 404
    assert (await client.get("/ui")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200
    assert client.runtime.pool is not None

    async def row() -> bool:
        role: str | None = await db.fetchval("SELECT role FROM processes")
        return role == "worker"

    await wait_until(row, timeout=10, what="the worker's registry row")


def test_settings_worker_role_without_workers_refused() -> None:
    with pytest.raises(ValueError, match="JOBQUEUE_ROLE=worker runs workers"):
        Settings(_env_file=None, role="worker", workers_enabled=False)


async def test_enqueue_accepts_task_and_queue_a_live_process_announced(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(role="api")
    refused = await client.post("/jobs", json={"task": "resize", "queue": "images"})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("unknown task 'resize'")
    await other_process(db, tasks=["resize"], queues={"images": 3})

    # Within a second of the first miss the catalog is not read again (a client sending
    # unknown names costs one read a second); the registry loop or the next miss reads it.
    async def accepted() -> bool:
        response = await client.post("/jobs", json={"task": "resize", "queue": "images"})
        return response.status_code == 201

    await wait_until(accepted, timeout=5, what="the announced task to be accepted")
    still_unknown = await client.post("/jobs", json={"task": "nope"})
    assert still_unknown.status_code == 422


async def test_overview_busy_slots_add_up_every_live_process(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(queues="default=4")
    await other_process(db, tasks=["echo"], queues={"default": 5}, busy=2)
    await _announced(client, count=2)
    workers = (await client.get("/ui/api/overview")).json()["workers"]
    assert workers == {"busy": 2, "total": 9}
