"""``jobqueue remote-worker`` processes against a live ``jobqueue api`` process (its own
database): every job done exactly once; a worker killed mid-job has its jobs rescued after the
lease and run by another; SIGTERM finishes or releases what runs and exits 0."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.procs import JOBQUEUE, Server, ServerFactory, child_env, read_records
from tests.e2e.support import rows, wait_all_status, wait_running
from tests.helpers import wait_until

REMOTE_TASKS = "tests.e2e.e2e_remote_tasks"


def api_env(database_url: str, **extra: str) -> dict[str, str]:
    """An API-only process that accepts the remote tasks' jobs before a worker announced them."""
    return {
        "JOBQUEUE_DATABASE_URL": database_url,
        "JOBQUEUE_REMOTE_TASKS": "remote_double,remote_sleep",
        **extra,
    }


def start_remote_worker(
    factory: ServerFactory,
    url: str,
    *options: str,
    env: Mapping[str, str] | None = None,
) -> Server:
    """``jobqueue remote-worker --url <url> --tasks <REMOTE_TASKS> <options>``, logged beside
    the servers (stopped at teardown, its log's end in a failed test's report)."""
    name = f"remote-worker-{len(factory.servers) + 1}"
    log_path = factory.workdir / f"{name}.log"
    log_file = log_path.open("ab")
    proc = subprocess.Popen(
        [*JOBQUEUE, "remote-worker", "--url", url, "--tasks", REMOTE_TASKS, *options],
        cwd=factory.workdir,
        env=child_env({**factory.base_env, **(env or {})}),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    worker = Server(name, url, proc, log_path, log_file)
    factory.servers.append(worker)
    return worker


async def enqueue(url: str, jobs: Sequence[dict[str, Any]]) -> list[int]:
    """Create ``jobs`` in one batch; their ids."""
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        response = await client.post("/jobs/batch", json={"jobs": list(jobs)})
    assert response.status_code == 201, response.text
    ids: list[int] = response.json()["ids"]
    return ids


async def test_remote_worker_drains_1000_jobs_each_done_once_with_its_result(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    api = await start_server.start(api_env(database_url), command="api")
    worker = start_remote_worker(start_server, api.url, "--concurrency", "50")
    ids = await enqueue(
        api.url, [{"task": "remote_double", "payload": {"n": n}} for n in range(1000)]
    )

    await wait_all_status(db, "done", 1000, timeout=120)

    found = await db.fetch("SELECT id, attempts, payload, result FROM jobs")
    assert sorted(row["id"] for row in found) == sorted(ids)
    assert {row["attempts"] for row in found} == {1}
    assert all(
        json.loads(row["result"]) == {"n": 2 * json.loads(row["payload"])["n"]} for row in found
    )
    assert read_records(record_file) == {job_id: [1] for job_id in ids}
    assert await worker.stop(signal.SIGTERM) == 0


async def test_remote_worker_killed_mid_job_its_jobs_are_rescued_and_run_by_another(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    api = await start_server.start(
        api_env(database_url, JOBQUEUE_RESCUE_INTERVAL_SECONDS="0.5"), command="api"
    )
    lease = ("--lease-seconds", "2")
    first = start_remote_worker(
        start_server, api.url, "--concurrency", "5", *lease, env={"E2E_REMOTE_SLOW": "1"}
    )
    ids = await enqueue(
        api.url, [{"task": "remote_sleep", "payload": {"seconds": 0.1}} for _ in range(10)]
    )
    await wait_running(db, record_file, 5)

    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    killed = {i for i, row in (await rows(db)).items() if row["status"] == "in_progress"}
    assert killed == set(read_records(record_file))
    assert len(killed) == 5

    second = start_remote_worker(start_server, api.url, "--concurrency", "10", *lease)
    await wait_all_status(db, "done", 10, timeout=30)

    final = await rows(db)
    assert sorted(final) == sorted(ids)
    assert read_records(record_file) == {i: [1, 2] if i in killed else [1] for i in ids}
    assert {i: (r["attempts"], r["rescues"]) for i, r in final.items()} == {
        i: (2, 1) if i in killed else (1, 0) for i in ids
    }
    assert await second.stop(signal.SIGTERM) == 0


async def test_remote_worker_sigterm_finishes_short_jobs_releases_long_ones_and_exits_0(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    api = await start_server.start(api_env(database_url), command="api")
    worker = start_remote_worker(
        start_server, api.url, "--concurrency", "4", "--grace-seconds", "3"
    )
    seconds = [1.0, 60.0, 1.0, 60.0, 60.0, 60.0]
    ids = await enqueue(
        api.url, [{"task": "remote_sleep", "payload": {"seconds": s}} for s in seconds]
    )
    await wait_running(db, record_file, 4)

    assert await worker.stop(signal.SIGTERM, timeout=20) == 0

    final = await rows(db)
    started = set(read_records(record_file))
    assert started == set(ids[:4])
    short = {ids[0], ids[2]}
    assert {i: (r["status"], r["attempts"], r["worker_id"] is None) for i, r in final.items()} == {
        i: ("done", 1, False) if i in short else ("todo", 0, True) for i in ids
    }
    assert "in_progress" not in {r["status"] for r in final.values()}


async def test_remote_worker_sigterm_while_polling_leaves_no_lease_behind(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    api = await start_server.start(api_env(database_url), command="api")
    worker = start_remote_worker(start_server, api.url, "--name", "poller")

    async def polling() -> bool:
        async with httpx.AsyncClient(base_url=api.url) as client:
            listing = (await client.get("/workers")).json()
        return any(item["worker_id"].endswith("/poller") for item in listing["items"])

    await wait_until(polling, 15, "the worker announced by its first lease call")
    assert await worker.stop(signal.SIGTERM, timeout=15) == 0
    (job_id,) = await enqueue(api.url, [{"task": "remote_sleep", "payload": {"seconds": 0}}])

    async def leased() -> bool:
        status = await db.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
        return bool(status != "todo")

    # A long-poll left behind on the service would lease the job as it arrives.
    with pytest.raises(AssertionError, match="a lease not reached"):
        await wait_until(leased, 1.5, "a lease")
