"""procrastinate's runner (procrastinate 3.10 with its psycopg 3 connector), in the benchmark's
own process, with its recommended settings.

Recommended settings, from its documentation ("Mind the size of your PostgreSQL pool"): for
short jobs the pool should hold as many connections as the worker's concurrency plus one, and
LISTEN/NOTIFY stays on (the default). Everything else is left at its default (jobs are kept,
not deleted, after they succeed).

- enqueue: ``task.defer_async()`` one job per call (single), ``peer_producers`` concurrent
  producers sharing an app whose pool has one connection each (concurrent), and one
  ``batch_defer_async`` call (batch).
- drain: N jobs (5,000 at most: ``Sizes.PEER_DRAIN_JOBS``) deferred with one batch call, then
  ``run_worker_async(concurrency=50, wait=False)``; rate = N / (last ``succeeded`` event −
  first task start). Transactions: ``pg_stat_database`` from before the worker's app opens to
  after it has closed.
- pickup: an idle worker (``wait=True``) in this process; from the start of ``defer_async`` to
  the task's first line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from procrastinate import App, PsycopgConnector

from bench.common import Admin, Sizes, connection, percentile, process_cpu_seconds, rate

NAME = "procrastinate"
TEMPLATE = "jqbench_tpl_procrastinate"

_first: list[float] = []
_waiting: list[asyncio.Future[float]] = []


async def noop() -> None:
    if not _first:
        _first.append(time.time())


async def stamp() -> None:
    now = time.time()
    if _waiting and not _waiting[-1].done():
        _waiting[-1].set_result(now)


def make_app(dsn: str, pool_size: int) -> App:
    app = App(connector=PsycopgConnector(conninfo=dsn, min_size=pool_size, max_size=pool_size))
    app.task(name="noop")(noop)
    app.task(name="stamp")(stamp)
    return app


def worker_options(concurrency: int, wait: bool) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "wait": wait,
        "install_signal_handlers": False,
        "listen_notify": True,
    }


async def prepare(admin: Admin) -> None:
    """Template database with procrastinate's schema (``apply_schema_async``)."""
    await admin.create(TEMPLATE)
    app = make_app(admin.dsn(TEMPLATE), 1)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def enqueue(dsn: str, sizes: Sizes) -> dict[str, Any]:
    """Single, concurrent and batch enqueue rates, in that order, on one database."""
    out: dict[str, Any] = {}
    app = make_app(dsn, sizes.peer_producers)
    async with app.open_async():
        task = app.tasks["noop"]
        for _ in range(20):  # warm-up, as the HTTP client does
            await task.defer_async()
        n = sizes.enqueue_single_jobs
        start = time.perf_counter()
        for _ in range(n):
            await task.defer_async()
        out["enqueue_single_jobs_per_s"] = n / (time.perf_counter() - start)

        remaining = sizes.enqueue_concurrent_jobs

        async def produce() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await task.defer_async()

        start = time.perf_counter()
        await asyncio.gather(*(produce() for _ in range(sizes.peer_producers)))
        out["enqueue_concurrent_jobs_per_s"] = sizes.enqueue_concurrent_jobs / (
            time.perf_counter() - start
        )

        n = sizes.enqueue_batch_jobs
        kwargs: list[dict[str, Any]] = [{} for _ in range(n)]
        start = time.perf_counter()
        await task.batch_defer_async(*kwargs)
        out["enqueue_batch_jobs_per_s"] = n / (time.perf_counter() - start)
    async with connection(dsn) as conn:
        stored = await conn.fetchval("SELECT count(*) FROM procrastinate_jobs")
    expected = 20 + sizes.enqueue_single_jobs + sizes.enqueue_concurrent_jobs + n
    if stored != expected:
        raise RuntimeError(f"procrastinate enqueue: {stored} rows, expected {expected}")
    return out


async def drain(admin: Admin, database: str, jobs: int, concurrency: int) -> dict[str, Any]:
    """Drain ``jobs`` queued no-op jobs with one worker (see the module docstring)."""
    dsn = admin.dsn(database)
    producer = make_app(dsn, 1)
    async with producer.open_async():
        await producer.tasks["noop"].batch_defer_async(*({} for _ in range(jobs)))
    before = await admin.settled_xacts(database)
    _first.clear()
    app = make_app(dsn, concurrency + 1)
    cpu0 = process_cpu_seconds()
    async with app.open_async():
        await app.run_worker_async(**worker_options(concurrency, wait=False))
        returned = time.time()
    cpu = process_cpu_seconds() - cpu0
    after = await admin.settled_xacts(database)
    async with connection(dsn) as c:
        ok = await c.fetchval("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")
        last = await c.fetchval(
            "SELECT extract(epoch FROM max(at))::float8 FROM procrastinate_events"
            " WHERE type = 'succeeded'"
        )
    if ok != jobs:
        raise RuntimeError(f"procrastinate drain: {ok} succeeded of {jobs}")
    busy = (last if last is not None else returned) - _first[0]
    return {
        "drain_jobs_per_s": rate(jobs, busy),
        "drain_seconds": busy,
        "drain_until_return_jobs_per_s": rate(jobs, returned - _first[0]),
        "transactions_per_job": (after - before) / jobs,
        "transactions": after - before,
        "drain_jobs": jobs,
        "worker_cpu_us_per_job": cpu * 1e6 / jobs,
    }


async def pickup(dsn: str, jobs: int, gap: float, concurrency: int) -> list[float]:
    """Latencies (ms) from the start of ``defer_async`` to the task starting, idle worker."""
    loop = asyncio.get_running_loop()
    _waiting.clear()
    worker_app = make_app(dsn, concurrency + 1)
    producer = make_app(dsn, 1)
    latencies: list[float] = []
    async with worker_app.open_async(), producer.open_async():
        run = asyncio.create_task(worker_app.run_worker_async(**worker_options(concurrency, True)))
        try:
            await asyncio.sleep(1.0)
            task = producer.tasks["stamp"]
            for i in range(jobs + 5):  # the first 5 warm up and are not counted
                _waiting.append(loop.create_future())
                start = time.time()
                await task.defer_async()
                started = await asyncio.wait_for(_waiting[-1], 10)
                if i >= 5:
                    latencies.append((started - start) * 1000.0)
                await asyncio.sleep(gap)
        finally:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(run, 30)
    return latencies


async def run_round(admin: Admin, sizes: Sizes, round_no: int) -> dict[str, Any]:
    """One round: enqueue, pickup, drain, each on a fresh database."""
    m: dict[str, Any] = {}
    db = await admin.create(f"jqbench_procrastinate_r{round_no}_enqueue", TEMPLATE)
    m.update(await enqueue(admin.dsn(db), sizes))
    await admin.drop(db)

    db = await admin.create(f"jqbench_procrastinate_r{round_no}_pickup", TEMPLATE)
    latencies = await pickup(
        admin.dsn(db), sizes.pickup_jobs, sizes.pickup_gap_seconds, sizes.drain_concurrency
    )
    m["pickup_p50_ms"] = percentile(latencies, 50)
    m["pickup_p99_ms"] = percentile(latencies, 99)
    await admin.drop(db)

    db = await admin.create(f"jqbench_procrastinate_r{round_no}_drain", TEMPLATE)
    m.update(await drain(admin, db, sizes.drain_jobs_for(NAME), sizes.drain_concurrency))
    await admin.drop(db)
    return m
