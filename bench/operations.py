"""Operations figures of "Run it for months": counts over millions of finished rows, a table
kept bounded by retention, and when to split the API from the workers.

    flock /tmp/jobqueue-bench.lock .venv/bin/python -m bench.operations           # all three
    OPS_ONLY=counts .venv/bin/python -m bench.operations                          # one part
    OPS_FINISHED=500000 OPS_RETENTION_JOBS=100000 .venv/bin/python -m bench.operations  # quick

1. **counts** (``OPS_FINISHED``, default 5,000,000 finished rows, and 1,000 ``todo``): the rows
   are inserted straight into a fresh database and analyzed; then ``jobqueue serve`` answers
   ``/metrics`` and ``/ui/api/overview``, each read after its cache expired (the time of the
   read that refreshes the counts), 5 times. The rows finished over the last 30 days (as under
   the default retention), so the overview's per-minute chart of the last hour reads about
   1/720 of them. Beside it, the time of the full grouped count the
   service ran before (``SELECT queue, status, count(*) … GROUP BY``).
2. **retention** (``OPS_RETENTION_JOBS``, default 1,000,000): ``jobqueue serve`` with
   ``JOBQUEUE_RETENTION_DONE_SECONDS=10`` and a 1 s pruner period; the jobs are enqueued over
   HTTP in batches of 1,000 at about ``OPS_RATE`` jobs/s (default 5,000) while the workers drain
   them. Every 5 s: rows in ``jobs``, its total size, and the latency of ``GET /jobs?limit=50``
   and of a probe job (``POST /jobs`` then a long-poll until done). The first and last samples
   say whether the table stays bounded and the latencies steady.
3. **split** (``OPS_PRODUCERS``, default 50 clients, ``OPS_SPLIT_SECONDS``, default 20): the
   producers create single jobs as fast as they can, first against one ``jobqueue serve``, then
   against a ``jobqueue api`` beside a ``jobqueue worker``; the pickup latency of every job
   (``started_at - run_at``, database clock) p50 and p99, and the requests per second.

Prints one JSON object. Needs a PostgreSQL it may create databases on (``BENCH_DATABASE_URL``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx

from bench.common import free_port, percentile
from bench.httpload import Client, build_request
from bench.load import ADMIN_URL, HOST, database_url, wait_ready

FINISHED = int(os.environ.get("OPS_FINISHED", "5000000"))
RETENTION_JOBS = int(os.environ.get("OPS_RETENTION_JOBS", "1000000"))
RATE = float(os.environ.get("OPS_RATE", "5000"))
PRODUCERS = int(os.environ.get("OPS_PRODUCERS", "50"))
SPLIT_SECONDS = float(os.environ.get("OPS_SPLIT_SECONDS", "20"))
ONLY = os.environ.get("OPS_ONLY", "")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def start(command: str, name: str, port: int, workdir: str, **env: str) -> subprocess.Popen[bytes]:
    """``jobqueue <command>`` on database ``name`` with extra ``JOBQUEUE_*`` settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_")}
    environ.update(JOBQUEUE_DATABASE_URL=database_url(name), JOBQUEUE_LOG_LEVEL="warning")
    environ.update({f"JOBQUEUE_{key.upper()}": value for key, value in env.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "jobqueue", command, "--host", HOST, "--port", str(port)],
        cwd=workdir,
        env=environ,
        stdout=subprocess.DEVNULL,
    )


@asynccontextmanager
async def database(prefix: str) -> AsyncIterator[str]:
    """A fresh database's name, dropped on exit."""
    name = f"jqbench_{prefix}_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def processes(name: str, *specs: tuple[str, dict[str, str]]) -> AsyncIterator[list[int]]:
    """Start ``(command, settings)`` processes one after another (each ready before the next);
    their ports; all stopped on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    with tempfile.TemporaryDirectory() as workdir:
        try:
            for command, env in specs:
                port = free_port()
                proc = start(command, name, port, workdir, **env)
                procs.append(proc)
                await wait_ready(port, proc)
                ports.append(port)
            yield ports
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(60)


async def counts() -> dict[str, Any]:
    """Count latencies over ``FINISHED`` finished rows."""
    async with database("counts") as name:
        async with processes(name, ("serve", {})):
            pass  # migrates the database
        db = await asyncpg.connect(database_url(name))
        try:
            started = time.monotonic()
            await db.execute(
                "INSERT INTO jobs (task, queue, status, finished_at, created_at)"
                " SELECT 'echo', 'q' || (g % 5), (ARRAY['done','done','done','failed',"
                "'cancelled'])[1 + g % 5], now() - make_interval(secs => g % 2592000),"
                " now() - make_interval(secs => g % 2592000) FROM generate_series(1, $1::int) g",
                FINISHED,
            )
            await db.execute("INSERT INTO jobs (task) SELECT 'echo' FROM generate_series(1, 1000)")
            await db.execute("VACUUM ANALYZE jobs")
            filled = time.monotonic() - started
            full_scan = []
            for _ in range(3):
                t = time.perf_counter()
                await db.fetch("SELECT queue, status, count(*) FROM jobs GROUP BY queue, status")
                full_scan.append(time.perf_counter() - t)
            size = await db.fetchval("SELECT pg_total_relation_size('jobs')")
        finally:
            await db.close()
        async with (
            processes(name, ("serve", {})) as [port],
            httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=60) as client,
        ):
            metrics = await timed(client, "/metrics", 5, pause=2.1)
            overview = await timed(client, "/ui/api/overview", 5, pause=1.1)
            queues = await timed(client, "/queues", 5, pause=0.0)
            estimated = (await client.get("/ui/api/overview")).json()["counts_estimated"]
    return {
        "finished_rows": FINISHED,
        "fill_seconds": round(filled, 1),
        "table_bytes": size,
        "counts_estimated": estimated,
        "metrics_refresh_ms": summary(metrics),
        "overview_refresh_ms": summary(overview),
        "queues_ms": summary(queues),
        "old_full_grouped_count_ms": summary(full_scan),
    }


async def timed(client: httpx.AsyncClient, path: str, times: int, pause: float) -> list[float]:
    """``times`` GETs of ``path``, ``pause`` seconds apart (past the path's cache)."""
    durations = []
    for _ in range(times):
        await asyncio.sleep(pause)
        started = time.perf_counter()
        response = await client.get(path)
        durations.append(time.perf_counter() - started)
        response.raise_for_status()
    return durations


def summary(values: list[float]) -> dict[str, float]:
    return {"median": ms(percentile(values, 50)), "max": ms(max(values))}


async def retention() -> dict[str, Any]:
    """The table under retention while ``RETENTION_JOBS`` jobs pass through it."""
    settings = {
        "retention_done_seconds": "10",
        "retention_interval_seconds": "1",
        "concurrency": "50",
    }
    samples: list[dict[str, Any]] = []
    async with database("retention") as name, processes(name, ("serve", settings)) as [port]:
        db = await asyncpg.connect(database_url(name))
        sampling_db = await asyncpg.connect(database_url(name))
        base = f"http://{HOST}:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            stop = asyncio.Event()

            async def sampler() -> None:
                while not stop.is_set():
                    samples.append(await sample(client, sampling_db))
                    await asyncio.sleep(5)

            sampling = asyncio.create_task(sampler())
            started = time.monotonic()
            sent = 0
            while sent < RETENTION_JOBS:
                jobs = [{"task": "echo", "payload": {"n": sent + i}} for i in range(1000)]
                response = await client.post("/jobs/batch", json={"jobs": jobs})
                response.raise_for_status()
                sent += 1000
                ahead = sent / RATE - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            while await db.fetchval("SELECT count(*) FROM jobs WHERE status <> 'done'"):
                await asyncio.sleep(1)
            seconds = time.monotonic() - started
            await asyncio.sleep(15)  # one retention age and a pruner round after the last
            stop.set()
            await sampling
            samples.append(await sample(client, db))
        pruned = await db.fetchval("SELECT count(*) FROM jobs")
        await db.close()
        await sampling_db.close()
    return {
        "jobs": RETENTION_JOBS,
        "seconds": round(seconds, 1),
        "rows_at_end": pruned,
        "max_rows": max(s["rows"] for s in samples),
        "max_table_mb": max(s["table_mb"] for s in samples),
        "first": samples[1] if len(samples) > 1 else samples[0],
        "last_while_running": samples[-2],
        "after": samples[-1],
        "samples": samples,
    }


async def sample(client: httpx.AsyncClient, db: asyncpg.Connection) -> dict[str, Any]:
    """Rows, table size, list latency and a probe job's round trip, now."""
    rows = await db.fetchval("SELECT count(*) FROM jobs")
    size = await db.fetchval("SELECT pg_total_relation_size('jobs')")
    started = time.perf_counter()
    (await client.get("/jobs", params={"limit": 50})).raise_for_status()
    listed = time.perf_counter() - started
    started = time.perf_counter()
    created = await client.post("/jobs", json={"task": "echo", "priority": 100})
    job_id = created.json()["id"]
    await client.get(f"/jobs/{job_id}", params={"wait_seconds": 30})
    probe = time.perf_counter() - started
    return {
        "rows": rows,
        "table_mb": round(size / 2**20, 1),
        "list_ms": ms(listed),
        "probe_round_trip_ms": ms(probe),
    }


async def split() -> dict[str, Any]:
    """Pickup latency under a saturating API: one process, then API and worker apart."""
    result: dict[str, Any] = {"producers": PRODUCERS, "seconds": SPLIT_SECONDS}
    layouts = {
        "together": [("serve", {})],
        "split": [("worker", {}), ("api", {})],
    }
    for layout, specs in layouts.items():
        async with database(f"split_{layout}") as name, processes(name, *specs) as ports:
            api_port = ports[-1]
            requests = await produce(api_port)
            db = await asyncpg.connect(database_url(name))
            try:
                while await db.fetchval("SELECT count(*) FROM jobs WHERE status <> 'done'"):
                    await asyncio.sleep(0.5)
                waits = [
                    row[0]
                    for row in await db.fetch(
                        "SELECT extract(epoch FROM started_at - run_at)::float8 FROM jobs"
                    )
                ]
            finally:
                await db.close()
            result[layout] = {
                "requests_per_s": round(requests / SPLIT_SECONDS),
                "pickup_p50_ms": ms(percentile(waits, 50)),
                "pickup_p99_ms": ms(percentile(waits, 99)),
            }
    return result


async def produce(port: int) -> int:
    """``PRODUCERS`` keep-alive connections creating single jobs for ``SPLIT_SECONDS`` (the raw
    client of ``bench/httpload.py``: httpx itself would be the bottleneck); how many were made."""
    deadline = time.monotonic() + SPLIT_SECONDS
    made = 0
    request = build_request("POST", "/jobs", json.dumps({"task": "echo"}).encode())

    async def producer() -> None:
        nonlocal made
        client = Client(port)
        await client.open()
        try:
            while time.monotonic() < deadline:
                status, _ = await client.request(request)
                if status == 201:
                    made += 1
        finally:
            await client.close()

    await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
    return made


async def main() -> int:
    report: dict[str, Any] = {}
    parts = {"counts": counts, "retention": retention, "split": split}
    for part, run in parts.items():
        if ONLY and part != ONLY:
            continue
        started = time.monotonic()
        report[part] = await run()
        report[part]["bench_seconds"] = round(time.monotonic() - started, 1)
        print(f"{part}: {json.dumps(report[part])}", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
