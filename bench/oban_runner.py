"""oban's side of the benchmark: run under the oban venv's Python 3.12 (``bench/.venv-oban``) by
``bench/peers_oban.py``, one phase per process (see ``bench/peer_process.py`` for the protocol).

Usage: ``python oban_runner.py '<json spec>'``; the spec has ``phase`` (install, enqueue, fill,
pickup, drain), ``dsn`` and the phase's sizes. It prints JSON lines on stdout. Only oban's public
API is used, as its documentation shows it: ``oban.schema.install`` for the schema,
``Oban.create_pool`` for the connection pool (its defaults, 1–10 connections, unless a phase
says otherwise), ``@worker`` classes, ``Oban.enqueue`` for one job, ``Oban.enqueue_many`` for
many, and ``Oban(pool=..., queues={"default": 50})`` as an async context manager for a worker
(its PostgreSQL notifier wakes the queue on insert). Times are ``time.time()`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import oban
from oban import Oban, worker
from oban.schema import install

WARMUP_JOBS = 20
PICKUP_WARMUP = 5

_first: list[float] = []
_count = [0]
_target = [0]
_all_done: list[asyncio.Event] = []
_waiting: list[asyncio.Future[float]] = []


@worker(queue="default")
class Noop:
    """The no-op job: notes the first start and counts executions."""

    async def process(self, job: Any) -> None:
        if not _first:
            _first.append(time.time())
        _count[0] += 1
        if _count[0] >= _target[0] and _all_done:
            _all_done[0].set()


@worker(queue="default")
class Stamp:
    """The pickup job: its first line resolves the benchmark's waiting future."""

    async def process(self, job: Any) -> None:
        now = time.time()
        if _waiting and not _waiting[-1].done():
            _waiting[-1].set_result(now)


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def wait_line() -> None:
    """Block until the benchmark writes a line on stdin (the drain handshake)."""
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def phase_install(spec: dict[str, Any]) -> dict[str, Any]:
    pool = await Oban.create_pool(spec["dsn"], min_size=1, max_size=1)
    try:
        await install(pool)
    finally:
        await pool.close()
    return {"oban": oban.__version__, "python": sys.version.split()[0]}


async def phase_enqueue(spec: dict[str, Any]) -> dict[str, Any]:
    """Single (``enqueue`` one job a call), concurrent (``producers`` tasks sharing one client
    whose pool holds one connection each) and batch (one ``enqueue_many``) rates, jobs/s."""
    out: dict[str, Any] = {}
    producers = spec["producers"]
    pool = await Oban.create_pool(spec["dsn"], min_size=producers, max_size=producers)
    try:
        async with Oban(pool=pool) as client:
            for _ in range(WARMUP_JOBS):
                await client.enqueue(Noop.new())
            n = spec["single"]
            start = time.perf_counter()
            for _ in range(n):
                await client.enqueue(Noop.new())
            out["enqueue_single_jobs_per_s"] = n / (time.perf_counter() - start)

            remaining = spec["concurrent"]

            async def produce() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await client.enqueue(Noop.new())

            start = time.perf_counter()
            await asyncio.gather(*(produce() for _ in range(producers)))
            out["enqueue_concurrent_jobs_per_s"] = spec["concurrent"] / (
                time.perf_counter() - start
            )

            n = spec["batch"]
            jobs = [Noop.new() for _ in range(n)]
            start = time.perf_counter()
            await client.enqueue_many(jobs)
            out["enqueue_batch_jobs_per_s"] = n / (time.perf_counter() - start)
    finally:
        await pool.close()
    return out


async def phase_fill(spec: dict[str, Any]) -> dict[str, Any]:
    """Queue ``jobs`` no-op jobs with one ``enqueue_many`` (before a drain)."""
    pool = await Oban.create_pool(spec["dsn"], min_size=1, max_size=1)
    try:
        async with Oban(pool=pool) as client:
            await client.enqueue_many(Noop.new() for _ in range(spec["jobs"]))
    finally:
        await pool.close()
    return {"jobs": spec["jobs"]}


async def phase_pickup(spec: dict[str, Any]) -> dict[str, Any]:
    """Latencies (ms) from the start of ``enqueue`` to ``Stamp.process`` starting, idle queue."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    worker_pool = await Oban.create_pool(spec["dsn"])
    client_pool = await Oban.create_pool(spec["dsn"], min_size=1, max_size=1)
    try:
        async with (
            Oban(pool=worker_pool, queues={"default": spec["concurrency"]}),
            Oban(pool=client_pool, name="client") as client,
        ):
            await asyncio.sleep(1.0)
            for i in range(spec["jobs"] + PICKUP_WARMUP):
                _waiting.append(loop.create_future())
                start = time.time()
                await client.enqueue(Stamp.new())
                started = await asyncio.wait_for(_waiting[-1], 10)
                if i >= PICKUP_WARMUP:
                    latencies.append((started - start) * 1000.0)
                await asyncio.sleep(spec["gap_seconds"])
    finally:
        await client_pool.close()
        await worker_pool.close()
    return {"latencies_ms": latencies}


async def phase_drain(spec: dict[str, Any]) -> dict[str, Any]:
    """One ``Oban`` with queue ``default`` at limit ``concurrency`` drains the queued jobs; it is
    stopped (its pending acknowledgements flushed) once every job has run."""
    _target[0] = spec["jobs"]
    _all_done.append(asyncio.Event())
    emit("ready")
    await wait_line()
    pool = await Oban.create_pool(spec["dsn"])
    try:
        async with Oban(pool=pool, queues={"default": spec["concurrency"]}):
            await asyncio.wait_for(_all_done[0].wait(), spec["timeout_seconds"])
            returned = time.time()
    finally:
        await pool.close()
    emit("done", first_started=_first[0], returned=returned, executed=_count[0])
    await wait_line()
    return {}


PHASES = {
    "install": phase_install,
    "enqueue": phase_enqueue,
    "fill": phase_fill,
    "pickup": phase_pickup,
    "drain": phase_drain,
}


async def main_async(spec: dict[str, Any]) -> None:
    try:
        result = await PHASES[spec["phase"]](spec)
    except Exception as exc:
        emit("error", error=f"{type(exc).__name__}: {exc}")
        raise
    emit("result", **result)


def main() -> None:
    spec = json.loads(sys.argv[-1])
    try:  # as oban's own CLI does
        from uvloop import run
    except ImportError:  # pragma: no cover
        from asyncio import run
    run(main_async(spec))


if __name__ == "__main__":
    main()
