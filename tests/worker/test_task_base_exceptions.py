"""Tasks that raise ``BaseException``s (SystemExit, KeyboardInterrupt, a CancelledError of their
own): the attempt fails with that error type, and the pool goes on running jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from jobqueue.tasks.registry import JobContext, TaskRegistry
from tests.conftest import AppFactory
from tests.helpers import wait_for_status

RAISED: dict[str, Callable[[], BaseException]] = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt,
    "CancelledError": asyncio.CancelledError,
}


def register_raisers(registry: TaskRegistry) -> None:
    """``raise_async`` / ``raise_sync``: raise ``RAISED[payload.error]`` on the attempts listed
    in ``payload.on_attempts`` (default: every attempt), else return ``"ok"``."""

    def maybe_raise(ctx: JobContext) -> str:
        if ctx.attempt in ctx.payload.get("on_attempts", [ctx.attempt]):
            raise RAISED[ctx.payload["error"]]()
        return "ok"

    async def raise_async(ctx: JobContext) -> str:
        await asyncio.sleep(0)
        return maybe_raise(ctx)

    def raise_sync(ctx: JobContext) -> str:
        return maybe_raise(ctx)

    registry.register("raise_async", raise_async)
    registry.register("raise_sync", raise_sync)


async def assert_pool_still_runs_jobs(client: httpx.AsyncClient, count: int = 20) -> None:
    """``count`` new jobs all end done, and /readyz still says the workers run."""
    ids = [(await client.post("/jobs", json={"task": "echo"})).json()["id"] for _ in range(count)]
    for job_id in ids:
        assert (await wait_for_status(client, job_id, {"done", "failed"}))["status"] == "done"
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["checks"]["loops"]) == (200, "ok")


@pytest.mark.parametrize("task", ["raise_async", "raise_sync"])
@pytest.mark.parametrize("error", sorted(RAISED))
async def test_pool_task_raising_base_exception_fails_job_and_keeps_running(
    start_app: AppFactory, registry: TaskRegistry, task: str, error: str
) -> None:
    register_raisers(registry)
    client = await start_app()

    created = await client.post(
        "/jobs", json={"task": task, "payload": {"error": error}, "max_attempts": 1}
    )
    job = await wait_for_status(client, created.json()["id"], {"done", "failed", "cancelled"})

    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert job["error"].startswith(error)
    attempts = (await client.get(f"/jobs/{job['id']}/attempts")).json()["items"]
    assert [(a["attempt"], a["outcome"], a["error_type"]) for a in attempts] == [
        (1, "failed", error)
    ]
    await assert_pool_still_runs_jobs(client)


@pytest.mark.parametrize("error", sorted(RAISED))
async def test_pool_task_raising_base_exception_with_attempts_left_is_retried(
    start_app: AppFactory, registry: TaskRegistry, error: str
) -> None:
    register_raisers(registry)
    client = await start_app()

    payload: dict[str, Any] = {"error": error, "on_attempts": [1]}
    created = await client.post(
        "/jobs", json={"task": "raise_async", "payload": payload, "max_attempts": 2}
    )
    job = await wait_for_status(client, created.json()["id"], {"done", "failed", "cancelled"})

    assert (job["status"], job["attempts"], job["result"]) == ("done", 2, "ok")
    attempts = (await client.get(f"/jobs/{job['id']}/attempts")).json()["items"]
    assert [(a["attempt"], a["outcome"], a["error_type"]) for a in attempts] == [
        (1, "retried", error),
        (2, "done", None),
    ]
