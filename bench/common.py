"""Shared helpers: configuration, database admin (fresh databases, transaction counters),
statistics and small utilities used by every system's runner.

All durations are float seconds unless a name says otherwise (``_ms``, ``_us``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = "jqbench_"
"""Every database the benchmark creates starts with this; stale ones are dropped at start."""


@dataclass(frozen=True)
class Sizes:
    """Job counts and repetitions of one benchmark run (full or quick mode)."""

    quick: bool
    rounds: int
    drain_jobs: int
    drain_concurrency: int
    enqueue_single_jobs: int
    enqueue_concurrent_jobs: int
    http_clients: int
    peer_producers: int
    enqueue_batch_jobs: int
    http_batch_size: int
    pickup_jobs: int
    pickup_gap_seconds: float
    sweep_jobs: int
    scale: bool
    scale_small_backlog: int
    scale_large_backlog: int
    scale_window_jobs: int
    scale_budget_seconds: float

    PEER_DRAIN_JOBS: ClassVar[dict[str, int]] = {"procrastinate": 5_000}
    """Slow peers drain fewer jobs, so that one drain takes about 15 s or less (procrastinate
    drains ~330–500 jobs/s here); a drain rate is a rate. Everyone else drains ``drain_jobs``."""

    def drain_jobs_for(self, system: str) -> int:
        """How many jobs ``system`` drains in a round (see :attr:`PEER_DRAIN_JOBS`)."""
        return min(self.drain_jobs, self.PEER_DRAIN_JOBS.get(system, self.drain_jobs))

    @classmethod
    def from_env(cls) -> Sizes:
        """Full sizes (the issue's), or ``BENCH_QUICK=1`` for a quick development run."""
        quick = os.environ.get("BENCH_QUICK", "").strip() not in ("", "0", "false", "no")
        budget = float(os.environ.get("BENCH_SCALE_BUDGET_SECONDS", "300"))
        if quick:
            return cls(
                quick=True,
                rounds=int(os.environ.get("BENCH_ROUNDS", "1")),
                drain_jobs=5_000,
                drain_concurrency=50,
                enqueue_single_jobs=500,
                enqueue_concurrent_jobs=2_000,
                http_clients=32,
                peer_producers=10,
                enqueue_batch_jobs=5_000,
                http_batch_size=1_000,
                pickup_jobs=50,
                pickup_gap_seconds=0.01,
                sweep_jobs=3_000,
                scale=os.environ.get("BENCH_SCALE", "0") == "1",
                scale_small_backlog=10_000,
                scale_large_backlog=int(os.environ.get("BENCH_SCALE_JOBS", "200000")),
                scale_window_jobs=10_000,
                scale_budget_seconds=budget,
            )
        return cls(
            quick=False,
            rounds=int(os.environ.get("BENCH_ROUNDS", "3")),
            drain_jobs=20_000,
            drain_concurrency=50,
            enqueue_single_jobs=2_000,
            enqueue_concurrent_jobs=10_000,
            http_clients=32,
            peer_producers=10,
            enqueue_batch_jobs=20_000,
            http_batch_size=1_000,
            pickup_jobs=200,
            pickup_gap_seconds=0.01,
            sweep_jobs=10_000,
            scale=os.environ.get("BENCH_SCALE", "1") == "1",
            scale_small_backlog=10_000,
            scale_large_backlog=int(os.environ.get("BENCH_SCALE_JOBS", "1000000")),
            scale_window_jobs=20_000,
            scale_budget_seconds=budget,
        )


def with_database(url: str, name: str) -> str:
    """``url`` with its database (path) replaced by ``name``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def log(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Admin:
    """The admin connection (``BENCH_DATABASE_URL``, default the ``postgres`` database) that
    creates and drops databases and reads ``pg_stat_database``."""

    url: str
    conn: asyncpg.Connection | None = None
    created: list[str] = field(default_factory=list)

    async def open(self) -> None:
        self.conn = await asyncpg.connect(self.url)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    @property
    def c(self) -> asyncpg.Connection:
        assert self.conn is not None
        return self.conn

    def dsn(self, database: str) -> str:
        return with_database(self.url, database)

    async def server_version(self) -> str:
        return str(await self.c.fetchval("SELECT version()"))

    async def drop_stale(self) -> list[str]:
        """Drop databases left by an interrupted run (names starting with ``jqbench_``)."""
        names = [
            r["datname"]
            for r in await self.c.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", DB_PREFIX + "%"
            )
        ]
        for name in names:
            await self.drop(name)
        return names

    async def create(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (dropping any old one), optionally from ``template``."""
        await self.drop(name)
        sql = f'CREATE DATABASE "{name}"'
        if template:
            sql += f' TEMPLATE "{template}"'
        await self.c.execute(sql)
        self.created.append(name)
        return name

    async def drop(self, name: str) -> None:
        await self.c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self.created.remove(name)

    async def drop_all_created(self) -> None:
        for name in list(self.created):
            await self.drop(name)

    async def backends(self, database: str) -> int:
        return int(
            await self.c.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
            )
        )

    async def xacts(self, database: str) -> int:
        """``xact_commit + xact_rollback`` of ``database`` as the statistics system has it now.

        PostgreSQL 15 backends flush their counters at most once a second while busy and
        within 10 s when idle, and always when they exit; see :meth:`settled_xacts`.
        """
        await self.c.execute("SELECT pg_stat_clear_snapshot()")
        value = await self.c.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            database,
        )
        return int(value or 0)

    async def settled_xacts(self, database: str, timeout: float = 20.0) -> int:
        """The counter once no backend is connected to ``database`` (each flushed its
        statistics as it exited) and two reads 150 ms apart agree."""
        deadline = time.monotonic() + timeout
        while await self.backends(database) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        previous = await self.xacts(database)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.15)
            current = await self.xacts(database)
            if current == previous:
                return current
            previous = current
        return previous


@contextlib.asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection, closed on exit."""
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def fetch_one(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    """``conn.fetchrow`` for a statement that always returns a row."""
    row = await conn.fetchrow(sql, *args)
    assert row is not None, sql
    return row


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"median", "min", "max", "n"}`` of the non-missing values."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "n": len(present),
    }


def process_cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds used so far by process ``pid`` (this process when None)."""
    import psutil  # type: ignore[import-untyped]

    times = psutil.Process(pid).cpu_times() if pid else psutil.Process().cpu_times()
    return float(times.user + times.system)


def rate(jobs: int, seconds: float | None) -> float | None:
    """Jobs per second, None when the window is unknown or empty."""
    if not seconds or seconds <= 0:
        return None
    return jobs / seconds
