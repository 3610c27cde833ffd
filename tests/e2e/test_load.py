"""Load on a real server: 100 concurrent clients create jobs for a bounded time while the workers
run them. No error response, no lost job, and the database connections stay within the pool's
bounds. (The 60-second version is ``bench/load.py``, not run here.)"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time

import asyncpg
import httpx

from tests.e2e.procs import ServerFactory
from tests.e2e.support import wait_all_status

CLIENTS = 100
SECONDS = 10.0
POOL_SIZE = 5


class RawClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams: ``POST /jobs`` and the status
    and body of the answer. httpx spends milliseconds of CPU per request with 100 connections
    in one pool, which would make the test's own process the bottleneck on a small machine."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post_job(self, body: bytes) -> tuple[int, bytes]:
        """Send one ``POST /jobs`` with a JSON body; ``(status, body)`` of the answer."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST /jobs HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        answer = await self.reader.readuntil(b"\r\n\r\n")
        status = int(answer[9:12])
        length = next(
            int(line.split(b":", 1)[1])
            for line in answer.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def create_for(
    base_url: str, clients: int, seconds: float
) -> tuple[list[int], dict[int, int]]:
    """``clients`` concurrent connections POST jobs until ``seconds`` have passed.

    Returns:
        the ids of the 201 answers, and the count of answers by status (0: connection error).
    """
    url = httpx.URL(base_url)
    ids: list[int] = []
    statuses: collections.Counter[int] = collections.Counter()
    deadline = time.monotonic() + seconds

    async def one_client(number: int) -> None:
        client = RawClient(url.host, url.port or 80)
        sent = 0
        try:
            while time.monotonic() < deadline:
                body = json.dumps({"task": "echo", "payload": {"client": number, "n": sent}})
                try:
                    status, answer = await client.post_job(body.encode())
                except (OSError, asyncio.IncompleteReadError):
                    statuses[0] += 1
                    await client.close()
                    client = RawClient(url.host, url.port or 80)
                    continue
                statuses[status] += 1
                if status == 201:
                    ids.append(json.loads(answer)["id"])
                sent += 1
        finally:
            await client.close()

    await asyncio.gather(*(one_client(n) for n in range(clients)))
    return ids, dict(statuses)


async def test_serve_100_clients_creating_jobs_no_error_no_lost_job_pool_bounded(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_CONCURRENCY": "20",
            "JOBQUEUE_DB_POOL_SIZE": str(POOL_SIZE),
            "JOBQUEUE_DB_POOL_TIMEOUT_SECONDS": "10",
            "JOBQUEUE_LOG_LEVEL": "warning",
        }
    )
    peak = 0
    sampling = True

    async def sample_connections() -> None:
        nonlocal peak
        while sampling:
            pooled: int = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'jobqueue'"
            )
            peak = max(peak, pooled)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_connections())
    try:
        ids, statuses = await create_for(server.url, CLIENTS, SECONDS)
    finally:
        sampling = False
        await sampler

    print(f"load: {len(ids)} jobs created by {CLIENTS} clients in {SECONDS} s")
    assert statuses == {201: len(ids)}
    assert len(ids) >= 500, f"only {len(ids)} jobs created in {SECONDS} s"
    assert len(set(ids)) == len(ids)
    await wait_all_status(db, "done", len(ids), timeout=60)
    stored = await db.fetch("SELECT id, status, attempts FROM jobs")
    assert {r["id"]: (r["status"], r["attempts"]) for r in stored} == dict.fromkeys(
        ids, ("done", 1)
    )
    # Pool size plus as many again of overflow (db/engine.py); never more connections.
    print(f"load: peak {peak} pooled connections (bound {2 * POOL_SIZE})")
    assert 1 <= peak <= 2 * POOL_SIZE
