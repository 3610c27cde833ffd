"""A minimal HTTP/1.1 load generator for jobqueue's API, run in its own process.

httpx costs hundreds of microseconds of CPU per request, which would make the client the
bottleneck on a 2-core machine. This client keeps one keep-alive connection per simulated
client on asyncio streams (uvloop), sends pre-built request bytes and parses only the status
line and ``Content-Length``: a few tens of microseconds per request.

Run as ``python -m bench.httpload '<json spec>'``; it prints one JSON object with the results.
Spec keys: ``port``, ``phases`` (a list of ``{"kind": ..., ...}``):

- ``single``: ``jobs`` POST /jobs one after another on one connection.
- ``concurrent``: ``jobs`` POST /jobs shared by ``clients`` connections, one job per request.
- ``batch``: ``jobs`` in POST /jobs/batch requests of ``per_request``, one after another.
- ``pickup``: ``jobs`` times (after 5 uncounted warm-up jobs): note ``time.time()``, POST /jobs
  ``{"task": "stamp"}``, wait for the job with ``GET /jobs/{id}?wait_seconds=10`` and take
  ``result.t - start``; then idle for ``gap_seconds``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

HOST = "127.0.0.1"


def build_request(method: str, path: str, body: bytes | None = None) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: keep-alive"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + (body or b"")


class Client:
    """One keep-alive connection; :meth:`request` sends raw bytes and returns (status, body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        marker = head.lower().find(b"\r\ncontent-length:")
        if marker < 0:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        end = head.index(b"\r\n", marker + 2)
        length = int(head[marker + 17 : end])
        body = await self.reader.readexactly(length) if length else b""
        return status, body


def _check(status: int, body: bytes, expected: int = 201) -> None:
    if status != expected:
        raise RuntimeError(f"HTTP {status} (expected {expected}): {body[:300]!r}")


async def _clients(port: int, count: int) -> list[Client]:
    clients = [Client(port) for _ in range(count)]
    await asyncio.gather(*(c.open() for c in clients))
    warm = build_request("GET", "/healthz")
    for c in clients:  # one round trip each so accept/handshake costs are out of the timing
        status, body = await c.request(warm)
        _check(status, body, 200)
    return clients


async def single(port: int, jobs: int, warmup: int = 20) -> dict[str, Any]:
    (client,) = await _clients(port, 1)
    raw = build_request("POST", "/jobs", b'{"task":"noop"}')
    for _ in range(warmup):
        _check(*await client.request(raw))
    start = time.perf_counter()
    for _ in range(jobs):
        _check(*await client.request(raw))
    elapsed = time.perf_counter() - start
    await client.close()
    return {"jobs": jobs, "seconds": elapsed, "jobs_per_s": jobs / elapsed, "warmup": warmup}


async def concurrent(port: int, jobs: int, clients: int) -> dict[str, Any]:
    conns = await _clients(port, clients)
    raw = build_request("POST", "/jobs", b'{"task":"noop"}')
    remaining = jobs

    async def worker(c: Client) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            _check(*await c.request(raw))

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        await c.close()
    return {"jobs": jobs, "clients": clients, "seconds": elapsed, "jobs_per_s": jobs / elapsed}


async def batch(port: int, jobs: int, per_request: int) -> dict[str, Any]:
    (client,) = await _clients(port, 1)
    body = json.dumps({"jobs": [{"task": "noop"}] * per_request}, separators=(",", ":"))
    raw = build_request("POST", "/jobs/batch", body.encode())
    requests = jobs // per_request
    start = time.perf_counter()
    for _ in range(requests):
        _check(*await client.request(raw))
    elapsed = time.perf_counter() - start
    await client.close()
    done = requests * per_request
    return {
        "jobs": done,
        "per_request": per_request,
        "seconds": elapsed,
        "jobs_per_s": done / elapsed,
    }


async def pickup(port: int, jobs: int, gap_seconds: float) -> dict[str, Any]:
    (client,) = await _clients(port, 1)
    create = build_request("POST", "/jobs", b'{"task":"stamp"}')
    latencies_ms: list[float] = []
    for i in range(jobs + 5):  # the first 5 warm up and are not counted
        start = time.time()
        status, body = await client.request(create)
        _check(status, body)
        job_id = json.loads(body)["id"]
        # The result is read after the gap, not at once: a read racing the job's start would
        # take the service's CPU at the moment measured (the peers' figures have no such read).
        await asyncio.sleep(gap_seconds)
        status, body = await client.request(build_request("GET", f"/jobs/{job_id}?wait_seconds=10"))
        _check(status, body, 200)
        job = json.loads(body)
        if job["status"] != "done":
            raise RuntimeError(f"stamp job {job_id} ended {job['status']}: {job.get('error')}")
        if i >= 5:
            latencies_ms.append((job["result"]["t"] - start) * 1000.0)
    await client.close()
    return {"jobs": jobs, "latencies_ms": latencies_ms}


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    port = int(spec["port"])
    out: dict[str, Any] = {}
    for phase in spec["phases"]:
        kind = phase["kind"]
        if kind == "single":
            out[kind] = await single(port, phase["jobs"])
        elif kind == "concurrent":
            out[kind] = await concurrent(port, phase["jobs"], phase["clients"])
        elif kind == "batch":
            out[kind] = await batch(port, phase["jobs"], phase["per_request"])
        elif kind == "pickup":
            out[kind] = await pickup(port, phase["jobs"], phase["gap_seconds"])
        else:
            raise ValueError(f"unknown phase {kind!r}")
    return out


def run(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(main(spec))
    except ImportError:  # pragma: no cover - uvicorn[standard] installs uvloop
        return asyncio.run(main(spec))


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
