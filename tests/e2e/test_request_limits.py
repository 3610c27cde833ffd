"""The request body limit on a real server (uvicorn): a 100 MB upload is refused with 413 without
the server reading it, whether its length is declared or it is streamed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx

from tests.e2e.procs import ServerFactory

HUNDRED_MB = 100 * 1024 * 1024
CHUNK = 65_536


async def open_post(url: str, headers: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the server with the head of a ``POST /jobs`` already sent."""
    parsed = httpx.URL(url)
    reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
    writer.write(
        f"POST /jobs HTTP/1.1\r\nHost: {parsed.host}\r\nContent-Type: application/json\r\n"
        f"{headers}\r\n".encode()
    )
    await writer.drain()
    return reader, writer


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
    """``(status, detail, head)`` of the server's answer, read with a 10 s deadline."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    return int(head[9:12]), json.loads(body)["detail"], head


async def test_serve_100_mb_declared_body_is_413_without_reading_it(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_WORKERS_ENABLED": "false"}
    )
    started = time.monotonic()
    reader, writer = await open_post(server.url, f"Content-Length: {HUNDRED_MB}\r\n")
    writer.write(b"[" * CHUNK)  # a first slice of the body; the rest is never sent

    status, detail, head = await read_answer(reader)

    assert status == 413
    assert detail.startswith(f"the request body is {HUNDRED_MB} bytes; the limit is 16777216")
    assert b"connection: close" in head.lower()
    try:
        rest = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        rest = b""  # closed with our unread bytes still in its buffer: a reset
    assert rest == b""  # the server hung up
    assert time.monotonic() - started < 5
    writer.close()


async def test_serve_streamed_body_over_limit_is_413_once_limit_is_passed(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_MAX_REQUEST_BYTES": "1000000",
            "JOBQUEUE_MAX_PAYLOAD_BYTES": "1000000",
        }
    )
    reader, writer = await open_post(server.url, "Transfer-Encoding: chunked\r\n")
    answer = asyncio.create_task(read_answer(reader))
    sent = 0
    chunk = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
    with contextlib.suppress(ConnectionError):
        while not answer.done() and sent < HUNDRED_MB:
            writer.write(chunk)
            await writer.drain()
            sent += CHUNK

    status, detail, _ = await answer

    assert status == 413
    assert "the limit is 1000000 bytes (JOBQUEUE_MAX_REQUEST_BYTES)" in detail
    # Answered before the 100 MB were sent: the server refused the body without reading it
    # all. (How much more than the limit got through depends on socket buffers and on how busy
    # the machine is; on a quiet one it is a few MB.)
    assert sent < HUNDRED_MB
    writer.close()
