"""Load soak: 100 concurrent clients create jobs for 60 s against ``jobqueue serve`` while its
workers run them; then every promise is checked. Not part of ``make test`` (its 10-second
version is ``tests/e2e/test_load.py``).

    .venv/bin/python -m bench.load            # 100 clients, 60 s
    LOAD_CLIENTS=200 LOAD_SECONDS=120 .venv/bin/python -m bench.load

Checks, each a non-zero exit when it fails: no error response (every answer a 201), no lost job
(every id answered ends ``done`` after one attempt, and the table holds no other job), and the
database connections of the service's pool never more than its bound (``JOBQUEUE_DB_POOL_SIZE``
plus as many again of overflow), sampled every 100 ms from ``pg_stat_activity``. Prints one JSON
object with the figures. Needs a PostgreSQL it may create a database on
(``BENCH_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``); the
database is dropped at the end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.httpload import Client, build_request

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CLIENTS = int(os.environ.get("LOAD_CLIENTS", "100"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
POOL_SIZE = int(os.environ.get("LOAD_POOL_SIZE", "10"))
CONCURRENCY = int(os.environ.get("LOAD_CONCURRENCY", "20"))
HOST = "127.0.0.1"
JOBQUEUE = Path(sys.executable).with_name("jobqueue")


def database_url(name: str) -> str:
    """``ADMIN_URL`` pointing at database ``name``."""
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def load(port: int) -> tuple[list[int], dict[int, int], list[float]]:
    """``CLIENTS`` connections create jobs for ``SECONDS``: ids, statuses, latencies (s)."""
    ids: list[int] = []
    statuses: collections.Counter[int] = collections.Counter()
    latencies: list[float] = []
    deadline = time.monotonic() + SECONDS

    async def one_client(number: int) -> None:
        client = Client(port)
        sent = 0
        try:
            while time.monotonic() < deadline:
                body = json.dumps({"task": "echo", "payload": {"client": number, "n": sent}})
                started = time.monotonic()
                try:
                    if client.writer is None:
                        await client.open()
                    status, answer = await client.request(
                        build_request("POST", "/jobs", body.encode())
                    )
                except (OSError, asyncio.IncompleteReadError):
                    statuses[0] += 1
                    await client.close()
                    client = Client(port)
                    continue
                latencies.append(time.monotonic() - started)
                statuses[status] += 1
                if status == 201:
                    ids.append(json.loads(answer)["id"])
                sent += 1
        finally:
            await client.close()

    await asyncio.gather(*(one_client(n) for n in range(CLIENTS)))
    return ids, dict(statuses), latencies


async def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Poll ``/readyz`` until 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"jobqueue serve exited with {proc.returncode}")
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(f"GET /readyz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            line = await reader.readline()
            writer.close()
            if line.split()[1:2] == [b"200"]:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("jobqueue serve not ready in time")


async def run(name: str) -> dict[str, Any]:
    """Serve on database ``name``, load it, check every promise; the figures."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_")}
    env.update(
        JOBQUEUE_DATABASE_URL=database_url(name),
        JOBQUEUE_CONCURRENCY=str(CONCURRENCY),
        JOBQUEUE_DB_POOL_SIZE=str(POOL_SIZE),
        JOBQUEUE_LOG_LEVEL="warning",
    )
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [str(JOBQUEUE), "serve", "--host", HOST, "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        db = await asyncpg.connect(database_url(name))
        try:
            await wait_ready(port, proc)
            peak = 0
            sampling = True

            async def sample() -> None:
                nonlocal peak
                while sampling:
                    pooled: int = await db.fetchval(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name = 'jobqueue'"
                    )
                    peak = max(peak, pooled)
                    await asyncio.sleep(0.1)

            sampler = asyncio.create_task(sample())
            ids, statuses, latencies = await load(port)
            sampling = False
            await sampler
            deadline = time.monotonic() + 300
            while await db.fetchval("SELECT count(*) FROM jobs WHERE status <> 'done'"):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            stored = {
                r["id"]: (r["status"], r["attempts"])
                for r in await db.fetch("SELECT id, status, attempts FROM jobs")
            }
        finally:
            await db.close()
            proc.terminate()
            proc.wait(60)
    latencies.sort()
    expected = dict.fromkeys(ids, ("done", 1))
    return {
        "clients": CLIENTS,
        "seconds": SECONDS,
        "jobs_created": len(ids),
        "requests_per_second": round(len(ids) / SECONDS, 1),
        "statuses": statuses,
        "latency_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2)
        if latencies
        else None,
        "jobs_lost": len(set(ids) - set(stored)),
        "jobs_not_done_once": sum(1 for i in ids if stored.get(i) != ("done", 1)),
        "unexpected_jobs": len(set(stored) - set(ids)),
        "peak_pooled_connections": peak,
        "pool_bound": 2 * POOL_SIZE,
        "ok": statuses == {201: len(ids)} and stored == expected and peak <= 2 * POOL_SIZE,
    }


async def main() -> int:
    """Create the database, run, drop it; 0 when every check held."""
    name = f"jqbench_load_{os.getpid()}"
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
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
