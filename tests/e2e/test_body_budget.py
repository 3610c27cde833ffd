"""Concurrent large request bodies on a real ``jobqueue serve``: the process takes at most
JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT of bodies at once (the others get 503 with Retry-After
before they are read), and its memory stays bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import psutil

from tests.e2e.procs import ServerFactory
from tests.helpers import wait_until

MIB = 1_048_576


def batch_body(size: int) -> bytes:
    """A ``POST /jobs/batch`` body of 1,000-byte echo jobs, just under ``size`` bytes."""
    job = {"task": "echo", "payload": {"note": "x" * 950}}
    count = size // (len(json.dumps(job).encode()) + 2) - 1  # ", " between jobs
    body = json.dumps({"jobs": [job] * min(count, 10_000)}).encode()
    assert size - 2_000 < len(body) <= size
    return body


async def test_serve_concurrent_large_bodies_past_budget_503_and_memory_bounded(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_MAX_REQUEST_BYTES": str(8 * MIB),
            "JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT": str(16 * MIB),
        }
    )
    body = batch_body(8 * MIB)
    process = psutil.Process(server.proc.pid)
    rss_before = process.memory_info().rss
    url = httpx.URL(server.url)
    connections = []
    for _ in range(6):  # every head (and the body's first bytes) is sent before any body ends
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(
            b"POST /jobs/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:1000]
        )
        await writer.drain()
        connections.append((reader, writer))
    answers = [asyncio.create_task(reader.read()) for reader, _ in connections]

    async def four_refused() -> bool:
        return sum(task.done() for task in answers) == 4

    await wait_until(four_refused, 10, "the bodies past the budget refused")
    refused = [task.result() for task in answers if task.done()]
    held = [i for i, task in enumerate(answers) if not task.done()]
    peak = rss_before

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    for i in held:
        connections[i][1].write(body[1000:])
    accepted = [await asyncio.wait_for(answers[i], 60) for i in held]
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    rss_after = process.memory_info().rss

    assert len(held) == 2
    assert all(answer.startswith(b"HTTP/1.1 503 ") for answer in refused)
    assert all(b"retry-after: 1\r\n" in answer.lower() for answer in refused)
    assert b"JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT" in refused[0]
    assert all(answer.startswith(b"HTTP/1.1 201 ") for answer in accepted)
    print(
        f"rss before {rss_before / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, "
        f"after {rss_after / MIB:.0f} MiB"
    )
    # A body costs the process several times its size while it is parsed and stored (about 6x
    # here); without the budget all six (48 MiB) would be in flight at once.
    assert peak - rss_before < 10 * 16 * MIB
    for _, writer in connections:
        writer.close()
