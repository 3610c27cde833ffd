"""Test helpers: wait on a condition with a deadline (never a bare sleep); measure the peak
resident memory of a block."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
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


class PeakRss:
    """How much this process's resident memory grew at its peak within a ``with`` block, bytes.

    A thread samples ``psutil.Process().memory_info().rss`` every millisecond; on Linux the
    kernel's own peak (``VmHWM``) is also reset on entry (``/proc/self/clear_refs``) and read on
    exit, so that a spike between two samples is not missed. ``growth`` is the larger of the two.
    """

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.base = 0
        self.peak = 0
        self.growth = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._kernel_peak = False

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._kernel_peak = True
        except OSError:
            self._kernel_peak = False
        self.base = self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        if self._kernel_peak:
            status = Path("/proc/self/status").read_text()
            kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
            self.peak = max(self.peak, int(kib) * 1024)
        self.growth = self.peak - self.base


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


async def other_process(
    db: asyncpg.Connection,
    *,
    worker_id: str = "other:1:abc",
    tasks: Sequence[str] = (),
    queues: Mapping[str, int] | None = None,
    busy: int = 0,
    finished: Mapping[str, list[int]] | None = None,
) -> None:
    """A live registry row of another (pretend) process: the ``tasks`` it runs, its ``queues``
    with their slots, ``busy`` slots, and the jobs it ``finished`` per minute
    (``{"<unix minute>": [done, failed]}``)."""
    served = dict(queues or {})
    await db.execute(
        "INSERT INTO processes (worker_id, host, pid, version, role, queues, tasks, slots, busy,"
        " finished) VALUES ($1, 'other', 1, '0', 'worker', $2, $3, $4::jsonb, $5, $6::jsonb)",
        worker_id,
        list(served),
        list(tasks),
        json.dumps(served),
        busy,
        json.dumps(dict(finished or {})),
    )
