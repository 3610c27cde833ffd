"""Queue-name cardinality: what 50,000 invented queue names cost ``jobqueue serve``.

    flock /tmp/jobqueue-bench.lock .venv/bin/python -m bench.queue_names
    QN_ATTEMPTS=5000 QN_SECONDS=5 .venv/bin/python -m bench.queue_names     # a quick run

Starts ``jobqueue serve`` (real uvicorn, workers on, ``JOBQUEUE_QUEUES=default``) on a fresh
database, then:

1. **refused**: ``QN_ATTEMPTS`` ``POST /jobs`` requests, each naming a new queue, from
   ``QN_CLIENTS`` keep-alive connections (the attack of the "Hardening round 2" review); every
   answer should be a 422 and the table should stay empty;
2. measures ``/metrics`` (size in bytes, time of 20 scrapes one after another), ``/ui`` (time of
   5 loads) and ``/healthz`` (every 50 ms, p50/p95/max) while ``QN_SCRAPERS`` clients loop
   ``/metrics`` for ``QN_SECONDS``;
3. **table holds them**: inserts ``QN_ATTEMPTS`` ``todo`` jobs in as many queues straight into
   the table (what a database written before the check holds), and measures the same again.

With ``QN_COMPARE_PYTHONPATH`` set to another checkout's ``src`` (e.g. the code before this
change, from ``git archive``), that code is then served on the same database and measured too
(``compare_table_holds_them``), so the two are compared within one run.

Prints one JSON object. Needs a PostgreSQL it may create a database on (``BENCH_DATABASE_URL``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``); the database is dropped at the end.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import asyncpg

from bench.common import free_port, percentile
from bench.httpload import Client, build_request
from bench.load import ADMIN_URL, HOST, database_url, wait_ready

ATTEMPTS = int(os.environ.get("QN_ATTEMPTS", "50000"))
CLIENTS = int(os.environ.get("QN_CLIENTS", "32"))
SCRAPERS = int(os.environ.get("QN_SCRAPERS", "3"))
SECONDS = float(os.environ.get("QN_SECONDS", "10"))
COMPARE_PYTHONPATH = os.environ.get("QN_COMPARE_PYTHONPATH")


async def attack(port: int) -> dict[str, Any]:
    """``ATTEMPTS`` job creations, each in a new queue: the answers by status, and the time."""
    statuses: collections.Counter[int] = collections.Counter()
    numbers = iter(range(ATTEMPTS))
    started = time.monotonic()

    async def one_client() -> None:
        client = Client(port)
        await client.open()
        try:
            for i in numbers:
                body = json.dumps({"task": "echo", "queue": f"invented-{i}"}).encode()
                status, _ = await client.request(build_request("POST", "/jobs", body))
                statuses[status] += 1
        finally:
            await client.close()

    await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return {"statuses": dict(statuses), "seconds": round(time.monotonic() - started, 1)}


async def timed_gets(port: int, path: str, times: int) -> tuple[list[float], int]:
    """``times`` GETs of ``path`` one after another: their durations (s) and the last size."""
    client = Client(port)
    await client.open()
    durations: list[float] = []
    size = 0
    try:
        for _ in range(times):
            started = time.perf_counter()
            status, body = await client.request(build_request("GET", path))
            durations.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}")
            size = len(body)
    finally:
        await client.close()
    return durations, size


async def health_under_scrapes(port: int) -> dict[str, Any]:
    """``/healthz`` every 50 ms while ``SCRAPERS`` clients loop ``/metrics`` for ``SECONDS``."""
    deadline = time.monotonic() + SECONDS
    scrapes = 0

    async def scraper() -> None:
        nonlocal scrapes
        client = Client(port)
        await client.open()
        try:
            while time.monotonic() < deadline:
                await client.request(build_request("GET", "/metrics"))
                scrapes += 1
        finally:
            await client.close()

    async def prober() -> list[float]:
        client = Client(port)
        await client.open()
        seen: list[float] = []
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await client.request(build_request("GET", "/healthz"))
                seen.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)
        finally:
            await client.close()
        return seen

    *_, probes = await asyncio.gather(*(scraper() for _ in range(SCRAPERS)), prober())
    return {
        "scrapes": scrapes,
        "healthz_p50_ms": ms(percentile(probes, 50)),
        "healthz_p95_ms": ms(percentile(probes, 95)),
        "healthz_max_ms": ms(max(probes)),
    }


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def measure(port: int) -> dict[str, Any]:
    """The figures of one state of the service."""
    await asyncio.sleep(2.1)  # past the table gauges' cache: the first scrape reads the table
    metrics, size = await timed_gets(port, "/metrics", 20)
    ui, _ = await timed_gets(port, "/ui", 5)
    return {
        "metrics_bytes": size,
        "metrics_first_ms": ms(metrics[0]),
        "metrics_median_ms": ms(percentile(metrics, 50)),
        "metrics_max_ms": ms(max(metrics)),
        "ui_median_ms": ms(percentile(ui, 50)),
        "ui_max_ms": ms(max(ui)),
        **await health_under_scrapes(port),
    }


def serve(name: str, port: int, workdir: str, pythonpath: str | None) -> subprocess.Popen[bytes]:
    """``jobqueue serve`` on database ``name`` (with ``pythonpath`` first on the path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_")}
    env.update(JOBQUEUE_DATABASE_URL=database_url(name), JOBQUEUE_LOG_LEVEL="warning")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.Popen(
        [sys.executable, "-m", "jobqueue", "serve", "--host", HOST, "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
    )


async def run(name: str) -> dict[str, Any]:
    """Serve on database ``name``, attack it, measure; the figures."""
    port = free_port()
    report: dict[str, Any] = {"attempts": ATTEMPTS, "clients": CLIENTS, "scrapers": SCRAPERS}
    with tempfile.TemporaryDirectory() as workdir:
        proc = serve(name, port, workdir, None)
        db = await asyncpg.connect(database_url(name))
        try:
            await wait_ready(port, proc)
            report["baseline"] = await measure(port)
            report["refused"] = await attack(port)
            report["refused"]["jobs_in_table"] = await db.fetchval("SELECT count(*) FROM jobs")
            report["after_refused"] = await measure(port)
            await db.execute(
                "INSERT INTO jobs (task, queue) SELECT 'echo', 'old-' || i"
                " FROM generate_series(1, $1::int) AS i",
                ATTEMPTS,
            )
            report["table_holds_them"] = await measure(port)
            proc.terminate()
            proc.wait(60)
            if COMPARE_PYTHONPATH:
                proc = serve(name, port, workdir, COMPARE_PYTHONPATH)
                await wait_ready(port, proc)
                report["compare_table_holds_them"] = await measure(port)
        finally:
            await db.close()
            proc.terminate()
            proc.wait(60)
    return report


async def main() -> int:
    """Create the database, run, drop it."""
    name = f"jqbench_qn_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            report = await run(name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
