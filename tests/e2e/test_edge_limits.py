"""The HTTP edge of a real ``jobqueue serve`` (uvicorn with the guarded httptools protocol):
slow-header clients are closed after JOBQUEUE_HEADERS_TIMEOUT_SECONDS while /healthz stays fast,
an oversized head or too many headers get 431 at once, idle connections make room at the
connection limit, busy ones get 503, keep-alive connections are closed when idle, and an IPv6
JOBQUEUE_HOST in brackets binds."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import statistics
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.procs import JOBQUEUE, Server, ServerFactory, _wait_ready, child_env, free_port
from tests.helpers import wait_until

HUNDRED_MB = 100 * 1024 * 1024


def events(server: Server, name: str) -> list[dict[str, object]]:
    lines = server.log_path.read_text().splitlines()
    found = [json.loads(line) for line in lines if line.startswith("{")]
    return [event for event in found if event.get("event") == name]


async def refused(server: Server, reason: str) -> float:
    """``jobqueue_http_refused_total{reason=...}`` as the server reports it (0 when absent)."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        text = (await client.get("/metrics")).text
    match = re.search(rf'^jobqueue_http_refused_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def connect(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = httpx.URL(server.url)
    return await asyncio.open_connection(url.host, url.port)


async def read_status(reader: asyncio.StreamReader, timeout: float = 10.0) -> tuple[int, bytes]:
    """The status and the whole answer of a connection the server closes after answering."""
    data = await asyncio.wait_for(reader.read(), timeout)
    return (int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else 0), data


async def test_serve_slow_header_clients_closed_after_timeout_while_healthz_stays_fast(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_HEADERS_TIMEOUT_SECONDS": "3",
        }
    )
    slow = []
    for _ in range(500):
        reader, writer = await connect(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: local")  # and never the rest
        slow.append((reader, writer))
    started = time.monotonic()
    latencies = []
    async with httpx.AsyncClient(base_url=server.url) as client:
        while time.monotonic() - started < 1.5:  # well within the 3 s the slow ones get
            sent = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            latencies.append(time.perf_counter() - sent)

    answers = await asyncio.gather(*(read_status(reader) for reader, _ in slow))
    closed_after = time.monotonic() - started

    assert len(latencies) >= 10
    assert statistics.quantiles(latencies, n=20)[-1] < 0.5  # p95, on a busy 2-core machine
    assert {status for status, _ in answers} == {408}
    assert b"JOBQUEUE_HEADERS_TIMEOUT_SECONDS" in answers[0][1]
    assert closed_after < 3 + 3
    assert await refused(server, "headers_timeout") == 500
    logged = events(server, "http_refused")
    assert logged[0]["reason"] == "headers_timeout"
    assert len(logged) <= 10  # throttled: at most one line a second per reason
    for _, writer in slow:
        writer.close()


async def test_serve_connection_sending_nothing_is_closed_after_headers_timeout(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_HEADERS_TIMEOUT_SECONDS": "1"}
    )
    reader, writer = await connect(server)
    started = time.monotonic()

    status, data = await read_status(reader)

    assert (status, data) == (0, b"")  # closed without an answer: no request was begun
    assert 0.9 < time.monotonic() - started < 3
    writer.close()


async def test_serve_100_mb_header_is_431_at_once_without_reading_it(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})
    reader, writer = await connect(server)
    started = time.monotonic()
    answered: list[float] = []

    async def answer() -> bytes:
        data = await reader.read(4096)
        answered.append(time.monotonic() - started)
        return data

    reading = asyncio.create_task(answer())
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
    sent = 0
    try:
        while sent < HUNDRED_MB and not reading.done():
            writer.write(b"a" * 65_536)
            await writer.drain()
            sent += 65_536
    except ConnectionError:
        pass  # the server stopped reading and closed: expected
    data = await asyncio.wait_for(reading, 10)

    assert data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"over 32768 bytes (JOBQUEUE_MAX_HEADER_BYTES)" in data
    assert answered[0] < 1.0
    assert sent < HUNDRED_MB / 4
    assert await refused(server, "headers_too_large") == 1
    writer.close()


async def test_serve_100000_headers_is_431_at_once(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})
    reader, writer = await connect(server)
    headers = b"".join(b"X-H%d: v\r\n" % n for n in range(100_000))
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + headers + b"\r\n")

    status, data = await read_status(reader)

    assert status == 431
    assert b"more than 100 header fields (JOBQUEUE_MAX_HEADERS)" in data
    assert time.monotonic() - started < 2
    writer.close()


async def test_serve_header_count_and_size_at_limits_are_served_one_over_is_431(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_MAX_HEADERS": "20",
            "JOBQUEUE_MAX_HEADER_BYTES": "4096",
        }
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        # httpx adds Host, Accept, Accept-Encoding, Connection and User-Agent: 5 fields.
        at = await client.get("/healthz", headers={f"x-h{n}": "v" for n in range(15)})
        over = await client.get("/healthz", headers={f"x-h{n}": "v" for n in range(16)})
        big = await client.get("/healthz", headers={"x-big": "a" * 3500})
        too_big = await client.get("/healthz", headers={"x-big": "a" * 4100})
    assert (at.status_code, over.status_code) == (200, 431)
    assert (big.status_code, too_big.status_code) == (200, 431)
    assert over.json() == {
        "detail": "the request has more than 20 header fields (JOBQUEUE_MAX_HEADERS)"
    }


async def test_serve_at_connection_limit_idle_connection_makes_room_for_a_request(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_LIMIT_CONCURRENCY": "10"}
    )
    idle = [await connect(server) for _ in range(10)]  # silent: no request begun

    async with httpx.AsyncClient(base_url=server.url) as client:
        responses = [await client.get("/healthz") for _ in range(3)]

    assert [r.status_code for r in responses] == [200] * 3
    status, data = await read_status(idle[0][0])  # the longest idle went first
    assert (status, data) == (0, b"")
    assert await refused(server, "idle_evicted") >= 1
    for _, writer in idle:
        writer.close()


async def test_serve_at_connection_limit_with_every_connection_busy_is_503(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_LIMIT_CONCURRENCY": "4",
        }
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        job_id = (await client.post("/jobs", json={})).json()["id"]
    waits = []
    for _ in range(4):  # four long-polls on a job that stays todo: four requests in progress
        reader, writer = await connect(server)
        writer.write(
            f"GET /jobs/{job_id}?wait_seconds=5 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        )
        waits.append((reader, writer))

    async def saturated() -> bool:
        async with httpx.AsyncClient(base_url=server.url) as client:
            return (await client.get("/healthz")).status_code == 503

    await wait_until(saturated, 5, "a 503 while every connection has a request")
    (event, *_) = [e for e in events(server, "http_refused") if e["reason"] == "concurrency_limit"]
    assert event["limit"] == 4
    for _, writer in waits:
        writer.close()


async def test_serve_idle_keep_alive_connection_closed_after_keep_alive_timeout(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_KEEP_ALIVE_TIMEOUT_SECONDS": "1"}
    )
    reader, writer = await connect(server)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    started = time.monotonic()

    rest = await asyncio.wait_for(reader.read(), 5)

    assert head.startswith(b"HTTP/1.1 200")
    assert rest == b""
    assert 0.9 < time.monotonic() - started < 3
    writer.close()


def spawn_with_host(workdir: Path, host: str, env: dict[str, str]) -> Server:
    """``jobqueue serve`` with ``JOBQUEUE_HOST=host`` (no ``--host``) on a free port."""
    port = free_port()
    log_path = workdir / "serve.log"
    log_file = log_path.open("ab")
    proc = subprocess.Popen(
        [*JOBQUEUE, "serve", "--port", str(port)],
        cwd=workdir,
        env=child_env({"JOBQUEUE_HOST": host, "JOBQUEUE_LOG_FORMAT": "json", **env}),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url_host = host if host.startswith("[") else f"[{host}]"
    return Server("ipv6", f"http://{url_host}:{port}", proc, log_path, log_file)


async def test_serve_bracketed_ipv6_host_binds_and_serves(database_url: str, workdir: Path) -> None:
    server = spawn_with_host(workdir, "[::1]", {"JOBQUEUE_DATABASE_URL": database_url})
    try:
        assert await _wait_ready(server, 30), server.tail()
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post("/jobs", json={"task": "echo"})
        assert response.status_code == 201, response.text
    finally:
        server.terminate()
    (event,) = events(server, "access_open")
    assert event["host"] == "::1"


async def test_serve_raises_open_file_limit_to_hard_limit_and_logs_it(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})
    await server.stop()
    (event,) = events(server, "open_files_limit")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the child inherits this process's
    assert (event["after"], event["limit_concurrency"]) == (hard, 1000)
