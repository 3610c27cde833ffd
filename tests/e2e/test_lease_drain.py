"""A stopping service answers its waiting lease long-polls at once with ``drain: true``: the
stop is not held up by them, and remote workers hear it (``api/server.py``: ``Server``)."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from tests.e2e.procs import ServerFactory
from tests.helpers import wait_until


async def test_sigterm_answers_waiting_lease_polls_with_drain_and_stops_soon(
    database_url: str, start_server: ServerFactory
) -> None:
    api = await start_server.start(
        {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_REMOTE_QUEUES": "remote"},
        command="api",
    )
    body = {"queues": ["remote"], "worker": "w1", "wait_seconds": 20}
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        polls = [asyncio.create_task(client.post("/leases", json=body)) for _ in range(3)]

        async def waiting() -> bool:
            text = (await client.get("/metrics")).text
            return "jobqueue_lease_polls_waiting 3.0" in text

        await wait_until(waiting, timeout=10, what="three waiting lease requests")
        started = time.monotonic()
        api.proc.send_signal(signal.SIGTERM)
        answers = await asyncio.gather(*polls)
        answered_after = time.monotonic() - started
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json() for a in answers] == [
        {"leases": [], "drain": True, "completed": [], "failed": []}
    ] * 3
    assert answered_after < 5.0  # not the 20 s of the wait
    assert await api.wait(timeout=15) == 0
