"""Test helpers: wait on a condition with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx


async def wait_for_status(
    client: httpx.AsyncClient, job_id: int, statuses: set[str], timeout: float = 15.0
) -> dict[str, Any]:
    """Poll ``GET /jobs/{id}`` until its status is in ``statuses``; fail after ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job: dict[str, Any] = (await client.get(f"/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")
        await asyncio.sleep(0.02)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` every 20 ms until it is true; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.02)


async def one(db: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    """The single row ``sql`` returns (fails the test when there is none)."""
    row = await db.fetchrow(sql, *args)
    assert row is not None, f"no row for {sql!r}"
    return row
