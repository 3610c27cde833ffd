"""A process that stalls longer than a lease rescues and re-claims its own job while the stale
attempt still runs in it: the pool stays up, the job ends done once, the stale attempt's end
is dropped and logged, and new work is picked up at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.procs import ServerFactory, read_records
from tests.helpers import one, wait_until


def _events(log: str, name: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == name:
            events.append(event)
    return events


async def test_serve_stall_past_the_lease_self_rescue_keeps_the_pool_up(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_CONCURRENCY": "4",
            "JOBQUEUE_LEASE_SECONDS": "3",
            "JOBQUEUE_RESCUE_INTERVAL_SECONDS": "0.5",
        }
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=20.0) as client:
        sleeper = (
            await client.post("/jobs", json={"task": "record", "payload": {"seconds": 8}})
        ).json()["id"]

        async def started() -> bool:
            return read_records(record_file).get(sleeper) == [1]

        await wait_until(started, 10, "the 8 s job started")
        blocker = await client.post(
            "/jobs",
            json={"task": "block_loop", "payload": {"seconds": 5}, "max_attempts": 1},
        )
        assert blocker.status_code == 201

        async def done() -> bool:
            status = await db.fetchval("SELECT status FROM jobs WHERE id = $1", sleeper)
            return bool(status == "done")

        await wait_until(done, 40, "the 8 s job done after the stall")
        row = await one(
            db, "SELECT status, attempts, rescues, result FROM jobs WHERE id = $1", sleeper
        )
        assert (row["status"], row["attempts"], row["rescues"]) == ("done", 2, 1)
        assert json.loads(row["result"]) == {"ok": True}
        # Attempt 1 ran in the stalled process; attempt 2 is the re-claim by the same process.
        assert read_records(record_file)[sleeper] == [1, 2]
        history = await db.fetch(
            "SELECT attempt, outcome FROM job_attempts WHERE job_id = $1 ORDER BY id", sleeper
        )
        assert [tuple(h) for h in history] == [(1, "rescued")]

        lost = [e for e in _events(server.tail(2000), "lease_lost") if e["job_id"] == sleeper]
        assert [e["attempt"] for e in lost] == [1]
        assert (await client.get("/readyz")).status_code == 200
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families((await client.get("/metrics")).text)
            for sample in family.samples
        }
        lost_key = ("jobqueue_leases_lost_total", (("queue", "default"), ("task", "record")))
        assert samples[lost_key] == 1.0
        assert not [key for key in samples if key[0] == "jobqueue_loop_restarts_total"]

        started_at = time.monotonic()
        fresh = (await client.post("/jobs", json={"task": "echo"})).json()["id"]
        job = (await client.get(f"/jobs/{fresh}", params={"wait_seconds": 1})).json()
        assert job["status"] == "done"
        assert time.monotonic() - started_at < 1.0
