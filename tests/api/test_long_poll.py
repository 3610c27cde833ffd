"""Long-polls (``GET /jobs/{id}?wait_seconds=``): a wait ends when its client disconnects, a
process lets at most ``JOBQUEUE_MAX_LONG_POLLS`` requests wait at once (then 429), and a wait
re-reads its job every poll interval only while LISTEN hears nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event

from jobqueue.api.app import create_app
from jobqueue.api.state import state_of
from jobqueue.settings import Settings
from jobqueue.tasks.registry import TaskRegistry
from tests.conftest import AppClient, AppFactory
from tests.helpers import deafen, wait_until
from tests.ui.support import serve


async def test_wait_client_disconnect_ends_the_wait_within_a_second(
    make_settings: Callable[..., Settings], registry: TaskRegistry
) -> None:
    app = create_app(make_settings(workers_enabled=False), registry=registry)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        job_id = (await client.post("/jobs", json={})).json()["id"]
        runtime = state_of(app).runtime
        assert runtime is not None
        waiters = runtime.service.waiters

        def waiting(count: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return len(waiters) == count

            return check

        poll = asyncio.create_task(client.get(f"/jobs/{job_id}", params={"wait_seconds": "60"}))
        await wait_until(waiting(1), timeout=5, what="the long-poll to wait")
        poll.cancel()  # closes the connection: the server sees the client go
        loop = asyncio.get_running_loop()
        gone_at = loop.time()
        await wait_until(waiting(0), timeout=5, what="the wait to end")
        assert loop.time() - gone_at < 1.0
        assert len(waiters) == 0


async def test_wait_over_the_cap_is_429_with_retry_after(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, max_long_polls=2)
    job_id = (await client.post("/jobs", json={})).json()["id"]
    waiters = client.runtime.service.waiters
    polls = [
        asyncio.create_task(client.get(f"/jobs/{job_id}", params={"wait_seconds": "30"}))
        for _ in range(2)
    ]

    async def two_waiting() -> bool:
        return len(waiters) == 2

    await wait_until(two_waiting, timeout=5, what="two long-polls to wait")
    refused = await client.get(f"/jobs/{job_id}", params={"wait_seconds": "30"})
    plain = await client.get(f"/jobs/{job_id}")
    for poll in polls:
        poll.cancel()
    await asyncio.gather(*polls, return_exceptions=True)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "detail": "2 requests already wait for jobs on this process (JOBQUEUE_MAX_LONG_POLLS): "
        "retry after 1 s, or read the job without wait_seconds"
    }
    assert plain.status_code == 200
    assert len(waiters) == 0


async def test_wait_job_finishing_answers_the_waiter_and_frees_its_slot(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False, max_long_polls=1)
    job_id = (await client.post("/jobs", json={})).json()["id"]
    poll = asyncio.create_task(client.get(f"/jobs/{job_id}", params={"wait_seconds": "30"}))

    async def one_waiting() -> bool:
        return len(client.runtime.service.waiters) == 1

    await wait_until(one_waiting, timeout=5, what="the long-poll to wait")
    assert (await client.post(f"/jobs/{job_id}/cancel")).status_code == 200
    answered = await asyncio.wait_for(poll, timeout=5)
    assert answered.json()["status"] == "cancelled"
    assert len(client.runtime.service.waiters) == 0
    again = await client.get(f"/jobs/{job_id}", params={"wait_seconds": "1"})
    assert again.json()["status"] == "cancelled"


class Reads:
    """Counts the statements an app runs through SQLAlchemy (a long-poll's reads of its job;
    the listener's pings go through asyncpg directly and are not counted)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_args: Any) -> None:
        self.count += 1

    async def at_least(self, count: int) -> bool:
        return self.count >= count


@contextmanager
def counting_reads(client: AppClient) -> Iterator[Reads]:
    reads = Reads()
    engine = client.runtime.service.engine.sync_engine
    event.listen(engine, "after_cursor_execute", reads)
    try:
        yield reads
    finally:
        event.remove(engine, "after_cursor_execute", reads)


async def test_wait_listen_receiving_reads_at_start_and_deadline_only(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False, poll_interval_seconds=0.1)
    job_id = (await client.post("/jobs", json={})).json()["id"]
    listener = client.runtime.listener
    assert listener is not None
    assert listener.connected
    with counting_reads(client) as reads:
        response = await client.get(f"/jobs/{job_id}", params={"wait_seconds": "1"})
    assert (response.status_code, response.json()["status"]) == (200, "todo")
    # Ten poll ticks passed: LISTEN hears, so none of them read.
    assert reads.count == 2


async def test_wait_listen_not_receiving_reads_every_poll_interval(
    start_app: AppFactory, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await start_app(workers_enabled=False, poll_interval_seconds=0.2)
    listener = client.runtime.listener
    assert listener is not None
    job_id = (await client.post("/jobs", json={})).json()["id"]
    reconnected = asyncio.Event()
    listener.on_connect(reconnected.set)
    # Each deaf connection's ping waits 2 s: two reconnects (each wakes every wait, one read)
    # are at least 2.1 s apart.
    await deafen(listener, db, monkeypatch, ping_timeout_seconds=2.0)

    async def not_receiving() -> bool:
        return not listener.receiving

    await wait_until(not_receiving, 10, "a ping unanswered")
    with counting_reads(client) as reads:
        waiting = asyncio.create_task(client.get(f"/jobs/{job_id}", params={"wait_seconds": 20}))
        reconnected.clear()
        await asyncio.wait_for(reconnected.wait(), 5)
        after_reconnect = reads.count
        # Before the next reconnect, only the poll (every 0.2 s) can read: a wait that re-read
        # on wake-ups alone would read once at most.
        await wait_until(lambda: reads.at_least(after_reconnect + 4), 1.9, "four more reads")
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


async def test_wait_on_a_job_deleted_meanwhile_answers_404_before_its_deadline(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    # Workers off: the job stays todo. With LISTEN connected the wait does not re-read on a
    # timer, so only the DELETE's notification (alembic 0005's trigger) can end it early.
    client = await start_app(workers_enabled=False)
    job_id = (await client.post("/jobs", json={})).json()["id"]
    waiters = client.runtime.service.waiters
    poll = asyncio.create_task(client.get(f"/jobs/{job_id}", params={"wait_seconds": "60"}))

    async def waiting() -> bool:
        return len(waiters) == 1

    await wait_until(waiting, timeout=5, what="the long-poll to wait")
    await db.execute("DELETE FROM jobs WHERE id = $1", job_id)
    response = await asyncio.wait_for(poll, 10)
    assert response.status_code == 404
    assert response.json()["detail"] == f"job {job_id} does not exist"
