"""Helpers shared by the e2e tests: enqueue over HTTP, read job rows, poll the database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.e2e.procs import read_records
from tests.helpers import wait_until


async def enqueue_records(base_url: str, count: int, seconds: float) -> list[int]:
    """POST ``count`` ``record`` jobs sleeping ``seconds`` each, concurrently; their ids."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        responses = await asyncio.gather(
            *(
                client.post("/jobs", json={"task": "record", "payload": {"seconds": seconds}})
                for _ in range(count)
            )
        )
    for response in responses:
        assert response.status_code == 201, response.text
    return sorted(response.json()["id"] for response in responses)


async def rows(db: asyncpg.Connection) -> dict[int, dict[str, Any]]:
    """Every job as ``{id: {status, attempts, rescues, worker_id}}``."""
    records = await db.fetch(
        "SELECT id, status, attempts, rescues, worker_id FROM jobs ORDER BY id"
    )
    return {r["id"]: dict(r) for r in records}


async def count_status(db: asyncpg.Connection, status: str) -> int:
    """How many jobs are in ``status``."""
    value: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = $1", status)
    return value


async def wait_running(
    db: asyncpg.Connection, record_file: Path, count: int, timeout: float = 15.0
) -> None:
    """Wait until ``count`` jobs are ``in_progress`` and as many have started their task.

    Both, because a claimed job is ``in_progress`` a moment before its task writes its line.
    """

    async def running() -> bool:
        started = sum(len(a) for a in read_records(record_file).values())
        return started == count and await count_status(db, "in_progress") == count

    await wait_until(running, timeout, f"{count} jobs in progress and started")


async def wait_all_status(
    db: asyncpg.Connection, status: str, count: int, timeout: float = 30.0
) -> None:
    """Wait until exactly ``count`` jobs (all of them) are in ``status``."""

    async def reached() -> bool:
        return await count_status(db, status) == count

    await wait_until(reached, timeout, f"{count} jobs {status}")
