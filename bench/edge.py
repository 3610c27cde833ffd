"""The HTTP edge under attack, measured on a real ``jobqueue serve`` (API only, fresh database).
Not part of ``make test`` (its small versions are ``tests/e2e/test_edge_limits.py`` and
``tests/e2e/test_body_budget.py``).

    flock /tmp/jobqueue-bench.lock .venv/bin/python -m bench.edge
    EDGE_SLOW_CLIENTS=2000 EDGE_LIMIT_CONCURRENCY=10000 .venv/bin/python -m bench.edge

Figures, printed as one JSON object:

1. ``/healthz`` latency (p50/p95/max, ms, one request at a time for ``EDGE_PROBE_SECONDS``) on
   an idle service, then while ``EDGE_SLOW_CLIENTS`` (5,000) connections trickle their request
   line and headers (one byte every 2 s, never finishing); how they had ended by the end of
   ``JOBQUEUE_HEADERS_TIMEOUT_SECONDS`` (10 s) plus 3 s: 408, or closed without an answer
   (made room for a newer connection at ``EDGE_LIMIT_CONCURRENCY``).
2. A 100 MB header: the time until the 431 arrives, and how much was sent by then.
3. 100,000 headers in one request (1.1 MB): the time until the 431 arrives.
4. Six concurrent batches of 16 MiB (the default JOBQUEUE_MAX_REQUEST_BYTES), each sent with
   ``Expect: 100-continue``: how many were taken (201) and refused (503,
   JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT), the service's RSS before, at its peak and after, and
   /healthz latency meanwhile.

Needs a PostgreSQL it may create a database on (``BENCH_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and an open-file limit above
``EDGE_SLOW_CLIENTS`` (this process raises its soft limit to the hard limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from typing import Any

import psutil

from bench.common import Admin, log, percentile
from bench.httpload import Client, build_request
from bench.jobqueue_service import TEMPLATE, Service, prepare

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SLOW_CLIENTS = int(os.environ.get("EDGE_SLOW_CLIENTS", "5000"))
LIMIT_CONCURRENCY = os.environ.get("EDGE_LIMIT_CONCURRENCY", "1000")
"""The service's JOBQUEUE_LIMIT_CONCURRENCY: with the default (1,000) the slow clients past it
are closed as newer ones arrive (idle eviction); above EDGE_SLOW_CLIENTS they all stay open
until their headers timeout."""
PROBE_SECONDS = float(os.environ.get("EDGE_PROBE_SECONDS", "5"))
HEADERS_TIMEOUT_SECONDS = 10.0
MIB = 1_048_576


async def probe_healthz(port: int, seconds: float) -> dict[str, Any]:
    """``GET /healthz`` one after another on one keep-alive connection for ``seconds``."""
    client = Client(port)
    await client.open()
    request = build_request("GET", "/healthz")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _ = await client.request(request)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        await client.close()
    return {
        "requests": len(latencies),
        "statuses": statuses,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "max_ms": round(max(latencies), 2),
    }


async def slow_headers(port: int, clients: int) -> dict[str, Any]:
    """``clients`` connections that trickle a request head and never finish it."""
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    started = time.monotonic()
    for _ in range(clients):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        connections.append((reader, writer))
    opened = time.monotonic() - started
    ends: dict[str, int] = {}

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = b""
        with contextlib.suppress(ConnectionError):
            while not reader.at_eof():
                writer.write(b"a")
                try:
                    answer += await asyncio.wait_for(reader.read(4096), 2)
                except TimeoutError:
                    continue
        end = answer[9:12].decode() if answer else "closed without answer"
        ends[end] = ends.get(end, 0) + 1

    tasks = [asyncio.create_task(trickle(r, w)) for r, w in connections]
    during = await probe_healthz(port, PROBE_SECONDS)
    remaining = HEADERS_TIMEOUT_SECONDS + 3 - (time.monotonic() - started)
    await asyncio.wait(tasks, timeout=max(remaining, 0))
    result = {
        "clients": clients,
        "open_seconds": round(opened, 2),
        "healthz_while_hanging": during,
        "ended_within_timeout_plus_3_s": ends,
    }
    for task in tasks:
        task.cancel()
    for _, writer in connections:
        writer.close()
    return result


async def big_header(port: int, size: int) -> dict[str, Any]:
    """One header of ``size`` bytes, sent while the answer is awaited."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    answered: list[float] = []

    async def answer() -> bytes:
        data = await reader.read(4096)
        answered.append(time.perf_counter() - started)
        return data

    reading = asyncio.create_task(answer())
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < size and not reading.done():
            writer.write(b"a" * 65_536)
            await writer.drain()
            sent += 65_536
    data = await asyncio.wait_for(reading, 30)
    writer.close()
    return {
        "status": data[9:12].decode(),
        "seconds_to_answer": round(answered[0], 4),
        "bytes_sent_by_then": sent,
    }


async def many_headers(port: int, count: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"".join(b"X-H%d: v\r\n" % n for n in range(count))
    started = time.perf_counter()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + head + b"\r\n")
    data = await asyncio.wait_for(reader.read(4096), 30)
    elapsed = time.perf_counter() - started
    writer.close()
    return {
        "status": data[9:12].decode(),
        "seconds_to_answer": round(elapsed, 4),
        "bytes": len(head),
    }


def batch_body(size: int) -> bytes:
    job = {"task": "noop", "payload": {"note": "x" * 1400}}
    count = min(size // (len(json.dumps(job)) + 2) - 1, 10_000)
    return json.dumps({"jobs": [job] * count}).encode()


async def concurrent_batches(service: Service, count: int, size: int) -> dict[str, Any]:
    body = batch_body(size)
    process = psutil.Process(service.pid)
    before = process.memory_info().rss
    peak = before
    head = (
        b"POST /jobs/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
    )

    async def post() -> int:
        # As curl does for a large body: the head first, the body only after "100 Continue";
        # a refusal (503) comes instead of it, and the body is never sent.
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(head)
        answer = await reader.readuntil(b"\r\n\r\n")
        if answer.startswith(b"HTTP/1.1 100"):
            writer.write(body)
            answer = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        return int(answer[9:12])

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    probe = asyncio.create_task(probe_healthz(service.port, 3))
    statuses = await asyncio.gather(*(post() for _ in range(count)))
    healthz = await probe
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    after = process.memory_info().rss
    return {
        "batches": count,
        "body_bytes": len(body),
        "statuses": sorted(statuses),
        "rss_before_mb": round(before / MIB),
        "rss_peak_mb": round(peak / MIB),
        "rss_after_mb": round(after / MIB),
        "healthz_meanwhile": healthz,
    }


async def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    admin = Admin(ADMIN_URL)
    await admin.open()
    try:
        await prepare(admin)
        name = await admin.create("jqbench_edge", template=TEMPLATE)
        service = Service(
            admin.dsn(name),
            workers=False,
            env={"JOBQUEUE_LIMIT_CONCURRENCY": LIMIT_CONCURRENCY},
        )
        await service.start()
        try:
            results: dict[str, Any] = {
                "slow_clients": SLOW_CLIENTS,
                "limit_concurrency": int(LIMIT_CONCURRENCY),
                "open_files": hard,
            }
            log("healthz, idle")
            results["healthz_idle"] = await probe_healthz(service.port, PROBE_SECONDS)
            log(f"healthz while {SLOW_CLIENTS} slow-header clients hang")
            results["slow_headers"] = await slow_headers(service.port, SLOW_CLIENTS)
            log("a 100 MB header")
            results["header_100_mb"] = await big_header(service.port, 100 * MIB)
            log("100,000 headers")
            results["headers_100000"] = await many_headers(service.port, 100_000)
            log("six concurrent 16 MiB batches")
            results["batches"] = await concurrent_batches(service, 6, 16 * MIB)
            service.check_alive("the edge figures")
        finally:
            await service.stop()
    finally:
        await admin.drop_all_created()
        await admin.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    sys.exit(asyncio.run(main()))
