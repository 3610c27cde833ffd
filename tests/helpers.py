"""Test helpers: wait on a condition with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from jobqueue.notify import Listener


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


async def deafen(
    listener: Listener,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    ping_timeout_seconds: float,
) -> None:
    """Make an app's LISTEN hear nothing, as behind pgbouncer in transaction mode: its LISTEN
    connection is terminated, and the next ones drop every notification (our callback is
    replaced, not the database) and wait ``ping_timeout_seconds`` for each ping;
    ``monkeypatch.undo()`` lets the connection after that hear again."""

    def drop(*_args: object) -> None:
        return None

    monkeypatch.setattr(listener, "_on_notification", drop)
    monkeypatch.setattr(listener, "ping_timeout_seconds", ping_timeout_seconds)
    await db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'jobqueue-listen'"
    )
