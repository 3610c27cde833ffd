"""The body's time limit in one process (JOBQUEUE_BODY_TIMEOUT_SECONDS): a body that stops
arriving is answered 408 with ``Connection: close`` and gives its bytes back at once; a body
declared but not sent holds none of the budget; a long-poll (which reads nothing but a
disconnect) is not cut by it. A real server's stalled sockets: ``tests/e2e/test_body_timeout.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import structlog
from starlette.types import Message

from tests.api.test_edge_access import counter
from tests.api.test_input_limits import call_asgi, status_and_detail
from tests.conftest import AppFactory
from tests.helpers import wait_until

SIXTEEN_MIB = 16 * 1_048_576


def stalling_receive(first: bytes, stalled: asyncio.Event) -> Any:
    """An ASGI ``receive`` that gives ``first`` (more to come), then never anything again."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": first, "more_body": True}
        stalled.set()
        await asyncio.Event().wait()  # the client sends nothing more
        raise AssertionError("unreachable")

    return receive


async def test_create_job_body_stalled_past_body_timeout_is_408_and_releases_budget(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(body_timeout_seconds=0.5, workers_enabled=False)
    app: Any = client.app
    stalled = asyncio.Event()
    length = [(b"content-length", b"1000")]
    started = time.monotonic()

    with structlog.testing.capture_logs() as logs:
        sent = await call_asgi(app, length, stalling_receive(b'{"payload": {', stalled))

    start = next(m for m in sent if m["type"] == "http.response.start")
    assert status_and_detail(sent) == (
        408,
        "the request body did not arrive within 0.5 s (JOBQUEUE_BODY_TIMEOUT_SECONDS; 13 of 1000 "
        "bytes received): send the body right after the headers",
    )
    assert (b"connection", b"close") in start["headers"]
    assert 0.45 < time.monotonic() - started < 2
    assert app.state.jobqueue.bodies.in_flight == 0
    (event,) = [e for e in logs if e["event"] == "http_refused"]
    assert (event["reason"], event["declared_bytes"], event["received_bytes"]) == (
        "body_timeout",
        1000,
        13,
    )
    metrics = (await client.get("/metrics")).text
    assert counter(metrics, "jobqueue_http_refused_total", "body_timeout") == 1
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_declared_body_not_yet_sent_holds_none_of_the_budget(
    start_app: AppFactory,
) -> None:
    client = await start_app(body_timeout_seconds=30, workers_enabled=False)
    app: Any = client.app
    stalled = asyncio.Event()
    length = [(b"content-length", str(SIXTEEN_MIB).encode())]
    waiting = [
        asyncio.create_task(call_asgi(app, length, stalling_receive(b"", stalled)))
        for _ in range(4)  # 64 MiB declared: the whole default budget
    ]

    async def all_stalled() -> bool:
        return stalled.is_set() and all(not task.done() for task in waiting)

    await wait_until(all_stalled, 5, "four bodies stalled")
    created = await client.post("/jobs", json={})

    assert app.state.jobqueue.bodies.in_flight == 0
    assert created.status_code == 201
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_long_poll_longer_than_body_timeout_is_answered_at_its_wait(
    start_app: AppFactory,
) -> None:
    client = await start_app(body_timeout_seconds=0.3, workers_enabled=False)
    job_id = (await client.post("/jobs", json={})).json()["id"]
    started = time.monotonic()

    response = await client.get(f"/jobs/{job_id}", params={"wait_seconds": 1})

    assert response.status_code == 200
    assert response.json()["status"] == "todo"
    assert time.monotonic() - started >= 1
