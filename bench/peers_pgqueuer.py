"""pgqueuer's runner (pgqueuer 1.6, asyncpg driver), in the benchmark's own process.

- enqueue: ``Queries.enqueue`` one job per call (single), from ``peer_producers`` concurrent
  producers each on its own connection (concurrent), and one call with lists (batch).
- drain: N jobs enqueued with one batch call, then a ``QueueManager`` in drain mode on one
  asyncpg connection with the best (batch_size, max_concurrent_tasks) of a sweep; rate =
  N / (last ``pgqueuer_log.created`` − first task start). Transactions: ``pg_stat_database``
  from before the worker connects to after it has disconnected.
- pickup: an idle ``QueueManager`` (continuous mode) in this process; from the start of the
  ``enqueue`` call to the entrypoint's first line.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from pgqueuer import QueueManager
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

from bench.common import (
    Admin,
    Sizes,
    connection,
    fetch_one,
    percentile,
    process_cpu_seconds,
    rate,
)

NAME = "pgqueuer"
TEMPLATE = "jqbench_tpl_pgqueuer"

SWEEP: list[tuple[int, int]] = [
    (10, 50),
    (25, 50),
    (10, 100),
    (25, 100),
    (50, 100),
    (10, 0),
    (25, 0),
    (50, 0),
]
"""(batch_size, max_concurrent_tasks) pairs tried; 0 = unlimited (pgqueuer's default).
pgqueuer requires max_concurrent_tasks >= 2 * batch_size."""
QUICK_SWEEP: list[tuple[int, int]] = [(10, 50), (25, 0)]


def queries(conn: asyncpg.Connection) -> Queries:
    return Queries(AsyncpgDriver(conn))


async def prepare(admin: Admin) -> None:
    """Template database with pgqueuer's schema (``Queries.install``)."""
    await admin.create(TEMPLATE)
    async with connection(admin.dsn(TEMPLATE)) as conn:
        await queries(conn).install()


async def enqueue_batch(dsn: str, jobs: int, entrypoint: str = "noop") -> None:
    async with connection(dsn) as conn:
        await queries(conn).enqueue([entrypoint] * jobs, [None] * jobs, [0] * jobs)


async def enqueue(dsn: str, sizes: Sizes) -> dict[str, Any]:
    """Single, concurrent and batch enqueue rates, in that order, on one database."""
    out: dict[str, Any] = {}
    async with connection(dsn) as conn:
        q = queries(conn)
        for _ in range(20):  # warm-up, as the HTTP client does
            await q.enqueue("noop", None)
        n = sizes.enqueue_single_jobs
        start = time.perf_counter()
        for _ in range(n):
            await q.enqueue("noop", None)
        out["enqueue_single_jobs_per_s"] = n / (time.perf_counter() - start)

    conns = [await asyncpg.connect(dsn) for _ in range(sizes.peer_producers)]
    try:
        producers = [queries(c) for c in conns]
        remaining = sizes.enqueue_concurrent_jobs

        async def produce(q: Queries) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await q.enqueue("noop", None)

        start = time.perf_counter()
        await asyncio.gather(*(produce(q) for q in producers))
        out["enqueue_concurrent_jobs_per_s"] = sizes.enqueue_concurrent_jobs / (
            time.perf_counter() - start
        )
    finally:
        for c in conns:
            await c.close()

    n = sizes.enqueue_batch_jobs
    async with connection(dsn) as conn:
        q = queries(conn)
        start = time.perf_counter()
        await q.enqueue(["noop"] * n, [None] * n, [0] * n)
        out["enqueue_batch_jobs_per_s"] = n / (time.perf_counter() - start)
        stored = await conn.fetchval("SELECT count(*) FROM pgqueuer")
    expected = 20 + sizes.enqueue_single_jobs + sizes.enqueue_concurrent_jobs + n
    if stored != expected:
        raise RuntimeError(f"pgqueuer enqueue: {stored} rows, expected {expected}")
    return out


async def drain(
    admin: Admin, database: str, jobs: int, batch_size: int, max_tasks: int
) -> dict[str, Any]:
    """Drain ``jobs`` queued no-op jobs with one QueueManager (see the module docstring)."""
    dsn = admin.dsn(database)
    await enqueue_batch(dsn, jobs)
    before = await admin.settled_xacts(database)
    first: list[float] = []

    conn = await asyncpg.connect(dsn)
    qm = QueueManager(queries(conn))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        if not first:
            first.append(time.time())

    cpu0 = process_cpu_seconds()
    await qm.run(
        batch_size=batch_size,
        max_concurrent_tasks=max_tasks or None,
        mode=QueueExecutionMode.drain,
    )
    returned = time.time()
    cpu = process_cpu_seconds() - cpu0
    await conn.close()
    after = await admin.settled_xacts(database)
    async with connection(dsn) as c:
        row = await fetch_one(
            c,
            "SELECT count(*) FILTER (WHERE status = 'successful') AS ok,"
            " extract(epoch FROM max(created))::float8 AS last FROM pgqueuer_log",
        )
        left = await c.fetchval("SELECT count(*) FROM pgqueuer")
    if left or row["ok"] != jobs:
        raise RuntimeError(f"pgqueuer drain: {left} left in queue, {row['ok']} logged of {jobs}")
    last = row["last"] if row["last"] is not None else returned
    busy = last - first[0]
    return {
        "drain_jobs_per_s": rate(jobs, busy),
        "drain_seconds": busy,
        "drain_until_return_jobs_per_s": rate(jobs, returned - first[0]),
        "transactions_per_job": (after - before) / jobs,
        "transactions": after - before,
        "worker_cpu_us_per_job": cpu * 1e6 / jobs,
        "batch_size": batch_size,
        "max_concurrent_tasks": max_tasks,
    }


async def pickup(dsn: str, jobs: int, gap: float, batch_size: int, max_tasks: int) -> list[float]:
    """Latencies (ms) from the start of ``enqueue`` to the entrypoint starting, idle worker."""
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[float]] = []
    worker_conn = await asyncpg.connect(dsn)
    qm = QueueManager(queries(worker_conn))

    @qm.entrypoint("stamp")
    async def stamp(job: Job) -> None:
        now = time.time()
        if waiting and not waiting[-1].done():
            waiting[-1].set_result(now)

    run = asyncio.create_task(qm.run(batch_size=batch_size, max_concurrent_tasks=max_tasks or None))
    latencies: list[float] = []
    try:
        async with connection(dsn) as conn:
            q = queries(conn)
            await asyncio.sleep(0.5)
            for i in range(jobs + 5):  # the first 5 warm up and are not counted
                waiting.append(loop.create_future())
                start = time.time()
                await q.enqueue("stamp", None)
                started = await asyncio.wait_for(waiting[-1], 10)
                if i >= 5:
                    latencies.append((started - start) * 1000.0)
                await asyncio.sleep(gap)
    finally:
        qm.shutdown.set()
        await asyncio.wait_for(run, 30)
        await worker_conn.close()
    return latencies


async def sweep(admin: Admin, sizes: Sizes) -> dict[str, Any]:
    """Drain ``sweep_jobs`` with every (batch_size, max_concurrent_tasks) and keep the fastest."""
    grid = QUICK_SWEEP if sizes.quick else SWEEP
    tried = []
    for batch_size, max_tasks in grid:
        db = await admin.create("jqbench_pgqueuer_sweep", TEMPLATE)
        result = await drain(admin, db, sizes.sweep_jobs, batch_size, max_tasks)
        tried.append(
            {
                "batch_size": batch_size,
                "max_concurrent_tasks": max_tasks,
                "drain_jobs_per_s": result["drain_jobs_per_s"],
            }
        )
        await admin.drop(db)
    best = max(tried, key=lambda t: t["drain_jobs_per_s"] or 0)
    return {"jobs": sizes.sweep_jobs, "tried": tried, "best": best}


async def run_round(
    admin: Admin, sizes: Sizes, round_no: int, best: dict[str, Any]
) -> dict[str, Any]:
    """One round: enqueue, pickup, drain, each on a fresh database."""
    batch_size, max_tasks = best["batch_size"], best["max_concurrent_tasks"]
    m: dict[str, Any] = {}
    db = await admin.create(f"jqbench_pgqueuer_r{round_no}_enqueue", TEMPLATE)
    m.update(await enqueue(admin.dsn(db), sizes))
    await admin.drop(db)

    db = await admin.create(f"jqbench_pgqueuer_r{round_no}_pickup", TEMPLATE)
    latencies = await pickup(
        admin.dsn(db), sizes.pickup_jobs, sizes.pickup_gap_seconds, batch_size, max_tasks
    )
    m["pickup_p50_ms"] = percentile(latencies, 50)
    m["pickup_p99_ms"] = percentile(latencies, 99)
    await admin.drop(db)

    db = await admin.create(f"jqbench_pgqueuer_r{round_no}_drain", TEMPLATE)
    m.update(await drain(admin, db, sizes.drain_jobs, batch_size, max_tasks))
    await admin.drop(db)
    return m
