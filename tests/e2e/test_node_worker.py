"""The Node.js example worker (``examples/node-worker/worker.js``) against a real ``jobqueue api``
process over the HTTP lease API (docs/workers.md): every job done exactly once, a failing task
ends ``failed`` with the Node error, heartbeats keep a long job's lease, a cancel reaches the
handler, and SIGTERM releases what is still running and exits 0.

The service is the API-only role with the jobs on a remote queue (``JOBQUEUE_REMOTE_QUEUES``), so
no in-process worker competes and the Node tasks are accepted before the Node worker ever
leased. Skips when ``node`` is not on PATH.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.procs import REPO_ROOT, Server, ServerFactory, child_env
from tests.helpers import wait_until

NODE = shutil.which("node")
WORKER_JS = REPO_ROOT / "examples" / "node-worker" / "worker.js"

pytestmark = pytest.mark.skipif(
    NODE is None, reason="no `node` on PATH: install Node.js 20+ to test examples/node-worker"
)

QUEUE = "node"
JOBS = 1000
BATCH = 250
FAIL_MESSAGE = "the Node task failed, as asked"


async def start_api(start_server: ServerFactory, database_url: str, **env: str) -> Server:
    """A ``jobqueue api`` process (no worker pool) that accepts jobs for the remote queue."""
    return await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_QUEUES": "default",
            "JOBQUEUE_REMOTE_QUEUES": QUEUE,
            "JOBQUEUE_BACKOFF_BASE_SECONDS": "0.1",
            "JOBQUEUE_RESCUE_INTERVAL_SECONDS": "0.5",
            **env,
        },
        command="api",
    )


def start_node_worker(
    factory: ServerFactory, api: Server, env: Mapping[str, str], script: Path | None = None
) -> Server:
    """``node worker.js`` against ``api``; listed with the factory's servers, so that teardown
    stops it and a failed test's report shows the end of its log."""
    assert NODE is not None
    name = f"node-worker-{len(factory.servers) + 1}"
    log_path = factory.workdir / f"{name}.log"
    log_file = log_path.open("ab")
    proc = subprocess.Popen(
        [NODE, str(script or WORKER_JS)],
        cwd=factory.workdir,
        # A 1 s long-poll: a stop waits for the one in flight (10 s by default).
        env=child_env(
            {"JOBQUEUE_URL": api.url, "JOBQUEUE_QUEUES": QUEUE, "WORKER_WAIT_SECONDS": "1", **env}
        ),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    worker = Server(name, api.url, proc, log_path, log_file)
    factory.servers.append(worker)
    return worker


async def enqueue(client: httpx.AsyncClient, jobs: list[dict[str, Any]]) -> list[int]:
    """Create ``jobs`` on the Node queue with ``POST /jobs/batch``; their ids."""
    response = await client.post(
        "/jobs/batch", json={"jobs": [{"queue": QUEUE, **j} for j in jobs]}
    )
    assert response.status_code == 201, response.text
    ids: list[int] = response.json()["ids"]
    return ids


async def wait_status(
    db: asyncpg.Connection, ids: list[int], status: str, timeout: float = 30.0
) -> None:
    """Wait until every job of ``ids`` is in ``status``."""

    async def reached() -> bool:
        count: int = await db.fetchval(
            "SELECT count(*) FROM jobs WHERE id = ANY($1::bigint[]) AND status = $2", ids, status
        )
        return count == len(ids)

    await wait_until(reached, timeout, f"{len(ids)} job(s) {status}")


async def in_progress(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'in_progress'")
    return count


async def test_node_worker_runs_1000_jobs_once_and_stops_on_sigterm(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    api = await start_api(start_server, database_url)
    async with httpx.AsyncClient(base_url=api.url, timeout=30.0) as client:
        add_ids: list[int] = []
        for first in range(0, JOBS, BATCH):
            specs = [
                {"task": "node.add", "payload": {"a": n, "b": 2 * n + 1}}
                for n in range(first, first + BATCH)
            ]
            add_ids += await enqueue(client, specs)
        [fail_id] = await enqueue(
            client, [{"task": "node.fail", "payload": {"message": FAIL_MESSAGE}, "max_attempts": 2}]
        )

        worker = start_node_worker(
            start_server, api, {"WORKER_CONCURRENCY": "20", "WORKER_NAME": "node-e2e"}
        )
        await wait_status(db, add_ids, "done", timeout=40)
        await wait_status(db, [fail_id], "failed", timeout=15)

        rows = await db.fetch(
            "SELECT id, status, attempts, payload, result FROM jobs WHERE id = ANY($1::bigint[])",
            add_ids,
        )
        wrong = []
        for row in rows:
            payload, result = json.loads(row["payload"]), json.loads(row["result"])
            if row["attempts"] != 1 or result != {"sum": payload["a"] + payload["b"]}:
                wrong.append(dict(row))
        assert len(rows) == JOBS
        assert wrong == []
        # Only attempts that did not succeed leave a history row: none of the 1,000 may have one.
        retried = await db.fetchval(
            "SELECT count(*) FROM job_attempts WHERE job_id = ANY($1::bigint[])", add_ids
        )
        assert retried == 0

        failed = (await client.get(f"/jobs/{fail_id}")).json()
        assert failed["status"] == "failed"
        assert failed["attempts"] == 2
        assert failed["error"] == f"Error: {FAIL_MESSAGE}"
        history = (await client.get(f"/jobs/{fail_id}/attempts")).json()["items"]
        assert [a["error_message"] for a in history] == [FAIL_MESSAGE] * 2
        assert all("worker.js" in (a["traceback"] or "") for a in history), history

        # The worker announced itself with its lease calls: a live `remote` process.
        listed = (await client.get("/workers")).json()["items"]
        [node] = [p for p in listed if p["role"] == "remote"]
        assert node["worker_id"].endswith("/node-e2e")
        assert (node["queues"], sorted(node["tasks"])) == (
            {QUEUE: 20},
            ["node.add", "node.fail", "node.sleep"],
        )

        assert await worker.stop(signal.SIGTERM, timeout=20) == 0
        assert await in_progress(db) == 0


async def test_node_worker_heartbeats_cancels_and_releases_on_sigterm(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    # A 3 s lease: heartbeats every second; a 4.5 s job is done on its first attempt only if
    # the heartbeats extended its lease (the rescuer runs every 0.5 s).
    api = await start_api(start_server, database_url, JOBQUEUE_LEASE_SECONDS="3")
    async with httpx.AsyncClient(base_url=api.url, timeout=30.0) as client:
        worker = start_node_worker(
            start_server, api, {"WORKER_CONCURRENCY": "4", "WORKER_GRACE_SECONDS": "1"}
        )
        [long_id, cancel_id, held_id] = await enqueue(
            client,
            [
                {"task": "node.sleep", "payload": {"seconds": 4.5}},
                {"task": "node.sleep", "payload": {"seconds": 600}},
                {"task": "node.sleep", "payload": {"seconds": 600}},
            ],
        )
        await wait_status(db, [long_id, cancel_id, held_id], "in_progress", timeout=15)

        assert (await client.post(f"/jobs/{cancel_id}/cancel")).status_code == 202
        await wait_status(db, [cancel_id], "cancelled", timeout=10)
        await wait_status(db, [long_id], "done", timeout=15)
        done = (await client.get(f"/jobs/{long_id}")).json()
        assert (done["attempts"], done["rescues"], done["result"]) == (1, 0, {"slept": 4.5})

        # SIGTERM with a job running past the 1 s grace: it is released (back to todo, its
        # attempt not used up) and the worker exits 0.
        assert await worker.stop(signal.SIGTERM, timeout=20) == 0
        assert await in_progress(db) == 0
        held = (await client.get(f"/jobs/{held_id}")).json()
        assert (held["status"], held["attempts"]) == ("todo", 0)


async def test_node_worker_drops_the_outcome_of_a_lost_lease(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    # The worker is frozen (SIGSTOP) past its 2 s lease: the rescuer takes the job back. Thawed,
    # the worker learns the lease is lost (a heartbeat's `lost`, or 409 to its complete), drops
    # that attempt's outcome and runs the job again on a new lease.
    api = await start_api(start_server, database_url, JOBQUEUE_LEASE_SECONDS="2")
    async with httpx.AsyncClient(base_url=api.url, timeout=30.0) as client:
        worker = start_node_worker(start_server, api, {"WORKER_CONCURRENCY": "2"})
        [job_id] = await enqueue(client, [{"task": "node.sleep", "payload": {"seconds": 1.5}}])
        await wait_status(db, [job_id], "in_progress", timeout=15)
        worker.proc.send_signal(signal.SIGSTOP)
        try:

            async def rescued() -> bool:
                rescues: int = await db.fetchval("SELECT rescues FROM jobs WHERE id = $1", job_id)
                return rescues == 1

            await wait_until(rescued, 15, "the frozen worker's job rescued")
        finally:
            worker.proc.send_signal(signal.SIGCONT)
        await wait_status(db, [job_id], "done", timeout=15)
        job = (await client.get(f"/jobs/{job_id}")).json()
        assert (job["attempts"], job["rescues"], job["result"]) == (2, 1, {"slept": 1.5})
        history = (await client.get(f"/jobs/{job_id}/attempts")).json()["items"]
        assert [a["outcome"] for a in history] == ["rescued", "done"]

        assert await worker.stop(signal.SIGTERM, timeout=20) == 0
        assert f"job {job_id}: lease lost" in worker.log_path.read_text()


async def test_node_worker_result_that_is_not_json_fails_the_attempt(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory
) -> None:
    # A handler returning a BigInt or a cycle: the attempt fails at once (it was retried as a
    # report every 30 s for ever while heartbeats kept the lease alive).
    script = start_server.workdir / "custom.mjs"
    script.write_text(
        f"import {{ handlers, main }} from {json.dumps(WORKER_JS.as_uri())};\n"
        "handlers['node.big'] = async () => 10n;\n"
        "handlers['node.cycle'] = async () => { const o = {}; o.o = o; return o; };\n"
        "main();\n"
    )
    api = await start_api(start_server, database_url)
    async with httpx.AsyncClient(base_url=api.url, timeout=30.0) as client:
        ids = await enqueue(
            client,
            [
                {"task": "node.big", "max_attempts": 1},
                {"task": "node.cycle", "max_attempts": 1},
            ],
        )
    start_node_worker(start_server, api, {"WORKER_CONCURRENCY": "2"}, script)
    await wait_status(db, ids, "failed", timeout=20)
    errors = [await db.fetchval("SELECT error FROM jobs WHERE id = $1", job_id) for job_id in ids]
    assert all(error.startswith("TypeError: ") for error in errors), errors
