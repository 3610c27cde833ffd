"""Slow and stalled request bodies on a real ``jobqueue serve``: a body must arrive within
JOBQUEUE_BODY_TIMEOUT_SECONDS (else 408, the connection closed, the budget given back at once),
and a body that declared a length but sent nothing holds none of the budget, so stalled
connections never lock job creation out."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from tests.e2e.procs import Server, ServerFactory
from tests.e2e.test_edge_limits import connect, events, read_status, refused
from tests.helpers import wait_until

MIB = 1_048_576


def post_head(length: int, path: str = "/jobs") -> bytes:
    """The head of a ``POST`` with a JSON body of ``length`` bytes."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def stalled(
    server: Server, count: int, body: bytes = b"", declared: int = 16 * MIB
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` connections that each send a ``POST /jobs`` head declaring ``declared`` bytes,
    then ``body`` (a start of it), then nothing."""
    connections = []
    for _ in range(count):
        reader, writer = await connect(server)
        writer.write(post_head(declared) + body)
        await writer.drain()
        connections.append((reader, writer))
    return connections


async def test_serve_four_stalled_16_mib_bodies_do_not_block_job_creation(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_BODY_TIMEOUT_SECONDS": "5",
        }
    )
    connections = await stalled(server, 4)  # 64 MiB declared: the whole default budget
    started = time.monotonic()

    async with httpx.AsyncClient(base_url=server.url) as client:
        created = await client.post("/jobs", json={"description": "while four bodies stall"})
    answered_after = time.monotonic() - started

    assert created.status_code == 201
    assert answered_after < 5  # before the stalled bodies time out: they hold no budget
    for _, writer in connections:
        writer.close()


async def test_serve_stalled_body_is_408_after_body_timeout_and_counted(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_BODY_TIMEOUT_SECONDS": "2",
        }
    )
    connections = await stalled(server, 4)
    started = time.monotonic()

    answers = await asyncio.gather(*(read_status(reader) for reader, _ in connections))
    closed_after = time.monotonic() - started

    assert [status for status, _ in answers] == [408] * 4
    head, _, body = answers[0][1].partition(b"\r\n\r\n")
    assert json.loads(body) == {
        "detail": "the request body did not arrive within 2 s (JOBQUEUE_BODY_TIMEOUT_SECONDS; "
        "0 of 16777216 bytes received): send the body right after the headers"
    }
    assert b"\r\nconnection: close" in head
    assert 1.9 < closed_after < 2 + 2  # the 408 at 2 s, then the lingering close (1 s)
    assert await refused(server, "body_timeout") == 4
    (logged, *_) = [e for e in events(server, "http_refused") if e["reason"] == "body_timeout"]
    assert (logged["declared_bytes"], logged["received_bytes"], logged["client"]) == (
        16 * MIB,
        0,
        "127.0.0.1",
    )
    for _, writer in connections:
        writer.close()


async def test_serve_body_trickled_a_byte_a_second_is_408_at_body_timeout(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_BODY_TIMEOUT_SECONDS": "2.5",
        }
    )
    reader, writer = await connect(server)
    writer.write(post_head(100))
    started = time.monotonic()
    answer = asyncio.create_task(read_status(reader))
    while not answer.done() and time.monotonic() - started < 6:
        writer.write(b" ")  # a byte at 0, 1 and 2 s: each well within any time between reads
        await writer.drain()
        await asyncio.wait([answer], timeout=1.0)  # the trickle's pace, or its answer
    status, data = await answer

    assert status == 408
    assert b"within 2.5 s (JOBQUEUE_BODY_TIMEOUT_SECONDS; 3 of 100 bytes received)" in data
    assert 2.4 < time.monotonic() - started < 2.5 + 2
    writer.close()


async def test_serve_body_holding_the_budget_is_released_at_body_timeout(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_BODY_TIMEOUT_SECONDS": "6",
            "JOBQUEUE_MAX_REQUEST_BYTES": str(MIB),
            "JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT": str(MIB),
        }
    )
    # All but the last byte of a 1 MiB body: the budget is full while it stalls.
    (held,) = await stalled(server, 1, body=b" " * (MIB - 1), declared=MIB)
    started = time.monotonic()

    async with httpx.AsyncClient(base_url=server.url) as client:

        async def answered(status: int) -> bool:
            return (await client.post("/jobs", json={})).status_code == status

        # 6 s of body timeout leaves a loaded machine 4 s to see the 503 (it flaked at 2 of 3).
        await wait_until(lambda: answered(503), 4, "a 503 while the stalled body holds the budget")
        await wait_until(lambda: answered(201), 6 + 3, "a job created once the body timed out")
    created_after = time.monotonic() - started
    status, _ = await read_status(held[0])

    assert status == 408
    assert 5.5 < created_after < 6 + 2
    held[1].close()
