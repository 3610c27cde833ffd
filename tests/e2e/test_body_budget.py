"""Large request bodies on a real ``jobqueue serve``: the process holds at most
JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT of received body bytes at once (a body whose declared
length does not fit what is held gets 503 with Retry-After before it is sent), and its memory
stays bounded."""

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


async def test_serve_bodies_filling_budget_make_next_body_503_before_sent_and_memory_bounded(
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
    head = (
        b"POST /jobs/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n" % len(body)
    )
    process = psutil.Process(server.proc.pid)
    rss_before = process.memory_info().rss
    url = httpx.URL(server.url)
    held = []
    for _ in range(2):  # all but the last byte of two bodies: the budget is (nearly) full
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(head + b"\r\n" + body[:-1])
        await writer.drain()
        held.append((reader, writer))
    refusals: list[bytes] = []

    async def next_body_refused() -> bool:
        # Expect: 100-continue, as curl sends for large bodies: the answer comes before the body.
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(head + b"Expect: 100-continue\r\n\r\n")
        line = await asyncio.wait_for(reader.readline(), 10)
        if line.startswith(b"HTTP/1.1 503 "):
            refusals.append(line + await asyncio.wait_for(reader.read(), 10))
        writer.close()  # admitted (the two bodies are not all in yet): gone before its body
        return bool(refusals)

    await wait_until(next_body_refused, 10, "a body that does not fit refused before it is sent")
    peak = rss_before

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    for _, writer in held:
        writer.write(body[-1:])
    accepted = [await asyncio.wait_for(reader.read(), 60) for reader, _ in held]
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    rss_after = process.memory_info().rss

    (refused,) = refusals
    assert b"retry-after: 1\r\n" in refused.lower()
    assert b"JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT" in refused
    assert all(answer.startswith(b"HTTP/1.1 201 ") for answer in accepted)
    print(
        f"rss before {rss_before / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, "
        f"after {rss_after / MIB:.0f} MiB"
    )
    # A body costs the process several times its size while it is parsed and stored (about 6x
    # here); the budget keeps that to two 8 MiB bodies at once.
    assert peak - rss_before < 10 * 16 * MIB
    for _, writer in held:
        writer.close()
