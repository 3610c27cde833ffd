"""jobqueue behind a real pgbouncer in transaction mode (``pool_mode = transaction``).

Such a pooler hands each transaction of a client connection to any server connection: a
prepared statement made in one is unknown in the next, and LISTEN cannot work. With
``JOBQUEUE_DB_STATEMENT_CACHE=false`` and ``JOBQUEUE_LISTEN=false`` (poll-only) the API and the
workers must work through it without one error; with the cache on, whatever fails must be a 503,
never a 500; with LISTEN left on, the app must notice that it hears nothing, say so (``/readyz``,
the log) and let long-polls poll. Select these tests with ``-m pgbouncer``; they skip only when
Debian's pgbouncer is not installed (``make test`` installs it as root). Run with ``-s`` to see
the counts.
"""

from __future__ import annotations

import asyncio
import collections
import statistics
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog

from jobqueue.db.migrations import head_revision
from jobqueue.notify.listener import NOT_RECEIVING_HINT, PING_TIMEOUT_SECONDS
from tests.conftest import AppFactory, Runs
from tests.e2e.pgbouncer import Pgbouncer, missing_reason
from tests.e2e.procs import run_cli
from tests.helpers import wait_until

pytestmark = pytest.mark.pgbouncer

POLL_ONLY: dict[str, Any] = {"db_statement_cache": False, "listen": False}
"""The settings for pgbouncer in transaction mode (docs/deploy.md)."""


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[Pgbouncer]:
    """One pgbouncer for the module, in front of the test server."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    bouncer = Pgbouncer()
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def bouncer_url(pgbouncer: Pgbouncer, database_url: str) -> str:
    """This test's database, through pgbouncer."""
    return pgbouncer.url_for(database_url)


class Traffic:
    """Sends API calls with bounded concurrency and counts the answers by ``(call, status)``;
    an exception (a 500 raised through the in-process transport) counts as status 0."""

    def __init__(self, client: httpx.AsyncClient, concurrency: int) -> None:
        self.client = client
        self.counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self.not_done: list[int] = []
        """Jobs whose ``wait_seconds`` answer came before they were done."""
        self._slots = asyncio.Semaphore(concurrency)

    async def call(self, name: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        """One call; its response, or None when it raised."""
        async with self._slots:
            try:
                response = await self.client.request(method, url, **kwargs)
            except Exception:
                self.counts[(name, 0)] += 1
                return None
        self.counts[(name, response.status_code)] += 1
        return response

    @property
    def total(self) -> int:
        """Calls made."""
        return sum(self.counts.values())

    def failures(self) -> dict[tuple[str, int], int]:
        """Calls answered with anything but 2xx."""
        return {key: n for key, n in self.counts.items() if not 200 <= key[1] < 300}


async def create_jobs(traffic: Traffic) -> tuple[list[int], list[int]]:
    """74 calls creating 200 jobs: 40 single and 14 batches of 10 that run at once, and 20
    single ones delayed by an hour (to be cancelled and retried). Returns ``(runnable,
    delayed)`` ids."""

    async def one(payload: dict[str, Any], **extra: Any) -> list[int]:
        body = {"task": "count", "payload": payload, **extra}
        response = await traffic.call("create", "POST", "/jobs", json=body)
        return [] if response is None or response.status_code != 201 else [response.json()["id"]]

    async def batch(n: int) -> list[int]:
        jobs = [{"task": "count", "payload": {"batch": n, "i": i}} for i in range(10)]
        response = await traffic.call("batch", "POST", "/jobs/batch", json={"jobs": jobs})
        if response is None or response.status_code != 201:
            return []
        return list(response.json()["ids"])

    runnable = await asyncio.gather(
        *(one({"n": n}) for n in range(40)), *(batch(n) for n in range(14))
    )
    delayed = await asyncio.gather(*(one({"parked": n}, delay_seconds=3600) for n in range(20)))
    return [i for ids in runnable for i in ids], [i for ids in delayed for i in ids]


async def mixed_calls(traffic: Traffic, runnable: list[int], delayed: list[int]) -> None:
    """426 calls at once: cancel then retry each delayed job (40), get (100), get with
    ``wait_seconds`` (50), list (60), attempts (50), readyz (66), metrics (60)."""

    async def cancel_then_retry(job_id: int) -> None:
        await traffic.call("cancel", "POST", f"/jobs/{job_id}/cancel")
        await traffic.call("retry", "POST", f"/jobs/{job_id}/retry")

    async def wait_done(job_id: int) -> None:
        response = await traffic.call("wait", "GET", f"/jobs/{job_id}?wait_seconds=20")
        if response is not None and response.json().get("status") != "done":
            traffic.not_done.append(job_id)

    lists = ["/jobs?limit=20", "/jobs?status=done", "/jobs?queue=default&task=count&limit=5"]
    calls: list[Awaitable[Any]] = [cancel_then_retry(job_id) for job_id in delayed]
    calls += [traffic.call("get", "GET", f"/jobs/{runnable[n % 180]}") for n in range(100)]
    calls += [wait_done(runnable[n * 3]) for n in range(50)]
    calls += [traffic.call("list", "GET", lists[n % 3]) for n in range(60)]
    calls += [traffic.call("attempts", "GET", f"/jobs/{runnable[n]}/attempts") for n in range(50)]
    calls += [traffic.call("readyz", "GET", "/readyz") for _ in range(66)]
    calls += [traffic.call("metrics", "GET", "/metrics") for _ in range(60)]
    await asyncio.gather(*calls)


async def test_pgbouncer_poll_only_500_mixed_calls_200_jobs_done_once_no_error(
    start_app: AppFactory, bouncer_url: str, db: asyncpg.Connection, runs: Runs
) -> None:
    client = await start_app(database_url=bouncer_url, concurrency=10, **POLL_ONLY)
    traffic = Traffic(client, concurrency=20)

    runnable, delayed = await create_jobs(traffic)
    await mixed_calls(traffic, runnable, delayed)

    async def all_done() -> bool:
        done: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'done'")
        return done == 200

    await wait_until(all_done, 60, "200 jobs done")
    print(f"pgbouncer: {traffic.total} API calls, answers {sorted(traffic.counts.items())}")
    print(f"pgbouncer: {len(runs.by_job)} jobs run, {sum(runs.by_job.values())} runs")
    assert traffic.total == 500
    assert traffic.failures() == {}
    assert traffic.not_done == []
    assert len(runnable) + len(delayed) == 200
    stored = await db.fetch("SELECT id, status, attempts FROM jobs")
    assert {r["id"]: (r["status"], r["attempts"]) for r in stored} == dict.fromkeys(
        runnable + delayed, ("done", 1)
    )
    assert runs.by_job == dict.fromkeys(runnable + delayed, 1)


async def test_pgbouncer_statement_cache_on_never_answers_500(
    start_app: AppFactory, bouncer_url: str
) -> None:
    # The misconfiguration the review met: prepared statements cached behind transaction
    # pooling. Calls fail at random; each failure must be a JSON 503, never a 500.
    client = await start_app(database_url=bouncer_url, listen=False)
    traffic = Traffic(client, concurrency=20)
    answers: list[tuple[str, httpx.Response | None]] = []

    async def record(name: str, method: str, url: str, **kwargs: Any) -> None:
        answers.append((name, await traffic.call(name, method, url, **kwargs)))

    calls: list[Callable[[], Awaitable[None]]] = [
        lambda: record("create", "POST", "/jobs", json={"task": "count"}),
        lambda: record("list", "GET", "/jobs?limit=5"),
        lambda: record("readyz", "GET", "/readyz"),
    ]
    await asyncio.gather(*(calls[n % 3]() for n in range(300)))
    print(f"pgbouncer, statement cache on: answers {sorted(traffic.counts.items())}")
    assert {status for _call, status in traffic.counts} <= {200, 201, 503}
    unavailable = [(name, r) for name, r in answers if r is not None and r.status_code == 503]
    assert unavailable, "no call failed: the test no longer exercises the misconfiguration"
    for name, response in unavailable:
        body = response.json()
        if name == "readyz":  # the probe's own answer names the failing check
            assert body["status"] == "unavailable"
        else:
            assert (response.headers["retry-after"], type(body["detail"])) == ("1", str)


async def test_pgbouncer_poll_only_other_process_jobs_picked_up_within_one_poll_interval(
    start_app: AppFactory, bouncer_url: str, db: asyncpg.Connection
) -> None:
    # Two apps through pgbouncer: one only enqueues, the other only runs jobs, with the
    # default poll interval. No NOTIFY reaches the runner: its poll must find each job.
    poll_seconds = 1.0
    enqueuer = await start_app(database_url=bouncer_url, workers_enabled=False, **POLL_ONLY)
    await start_app(database_url=bouncer_url, poll_interval_seconds=poll_seconds, **POLL_ONLY)
    ids: list[int] = []
    for n in range(20):
        response = await enqueuer.post("/jobs", json={"task": "count", "payload": {"n": n}})
        assert response.status_code == 201
        ids.append(response.json()["id"])
        # Pacing, not waiting for a condition: spread the enqueues over the poll's phases.
        await asyncio.sleep(0.13)

    async def all_done() -> bool:
        done: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'done'")
        return done == len(ids)

    await wait_until(all_done, 30, "20 jobs done")
    latencies = [
        row["seconds"]
        for row in await db.fetch(
            "SELECT extract(epoch FROM started_at - created_at)::float8 AS seconds FROM jobs"
        )
    ]
    print(
        f"pgbouncer, poll-only pickup of another process's jobs (poll {poll_seconds} s): "
        f"median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s, "
        f"n={len(latencies)}"
    )
    assert len(latencies) == 20
    # One poll interval, plus the claim round itself on a shared 2-core machine.
    assert max(latencies) < poll_seconds + 0.5


LISTEN_LEFT_ON: dict[str, Any] = {"db_statement_cache": False}
"""The tester's misconfiguration: the statement cache off, ``JOBQUEUE_LISTEN`` left at true."""


async def test_pgbouncer_listen_left_on_readyz_not_receiving_and_logged_once(
    start_app: AppFactory, bouncer_url: str
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with structlog.testing.capture_logs() as logs:
        client = await start_app(database_url=bouncer_url, workers_enabled=False, **LISTEN_LEFT_ON)

        async def not_receiving() -> bool:
            response = await client.get("/readyz")
            return bool(response.json()["checks"].get("listen") == "not receiving")

        # The first ping (right after LISTEN) is unanswered after PING_TIMEOUT_SECONDS.
        await wait_until(not_receiving, PING_TIMEOUT_SECONDS + 10, "listen: not receiving")
        detected = loop.time() - started
        response = await client.get("/readyz")
    print(f"pgbouncer, LISTEN left on: /readyz says not receiving {detected:.2f} s after start")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            "database": "ok",
            "migrations": "ok",
            "listen": "not receiving",
            "loops": "ok",
        },
    }
    assert detected < PING_TIMEOUT_SECONDS + 5
    assert [
        (entry["log_level"], entry["detail"])
        for entry in logs
        if entry["event"] == "listen_not_receiving"
    ] == [("error", NOT_RECEIVING_HINT)]


async def test_pgbouncer_listen_left_on_wait_sees_other_process_finish_within_poll_interval(
    start_app: AppFactory, bouncer_url: str, db: asyncpg.Connection
) -> None:
    # The tester's case: a long-poll through pgbouncer for a job another process (connected
    # directly) finishes after 1.2 s (not a multiple of the poll: the finish falls between two
    # ticks); its "finished" NOTIFY cannot reach the waiting process.
    poll_seconds = 0.5
    waiter = await start_app(
        database_url=bouncer_url,
        workers_enabled=False,
        poll_interval_seconds=poll_seconds,
        **LISTEN_LEFT_ON,
    )
    await start_app()  # the runner, connected directly
    created = await waiter.post("/jobs", json={"task": "block", "payload": {"seconds": 1.2}})
    job_id = created.json()["id"]
    loop = asyncio.get_running_loop()
    asked = loop.time()
    response = await waiter.get(f"/jobs/{job_id}", params={"wait_seconds": 15})
    waited = loop.time() - asked
    late: float = await db.fetchval(
        "SELECT extract(epoch FROM clock_timestamp() - finished_at)::float8 FROM jobs"
        " WHERE id = $1",
        job_id,
    )
    print(
        f"pgbouncer, LISTEN left on: wait_seconds=15 answered after {waited:.2f} s, "
        f"{late:.3f} s after the job finished (poll {poll_seconds} s)"
    )
    assert (response.status_code, response.json()["status"]) == (200, "done")
    # At the next poll tick (plus a read and this query), not at the 15 s deadline.
    assert late < poll_seconds + 0.5


async def test_pgbouncer_concurrent_migrate_processes_reach_head_and_hold_no_lock(
    pgbouncer: Pgbouncer, empty_database_url: str, workdir: Path
) -> None:
    # Replicas starting together: three `jobqueue migrate` processes through pgbouncer.
    env = {
        "JOBQUEUE_DATABASE_URL": pgbouncer.url_for(empty_database_url),
        "JOBQUEUE_DB_STATEMENT_CACHE": "false",
    }
    # Other clients keep the pooler's server connections changing hands meanwhile, as an
    # app's traffic would: consecutive transactions of one client land on different servers.
    churning = True

    async def churn() -> None:
        conn = await asyncpg.connect(
            env["JOBQUEUE_DATABASE_URL"].replace("+asyncpg", ""), statement_cache_size=0
        )
        try:
            while churning:
                await conn.execute("SELECT pg_sleep(0.001)")
        finally:
            await conn.close()

    churners = [asyncio.create_task(churn()) for _ in range(20)]
    try:
        results = await asyncio.gather(
            *(run_cli("migrate", cwd=workdir, env=env, timeout=30) for _ in range(3))
        )
    finally:
        churning = False
        await asyncio.gather(*churners)
    assert [(r.returncode, r.stdout) for r in results] == [
        (0, "database is at the newest revision\n")
    ] * 3
    direct = await asyncpg.connect(empty_database_url.replace("+asyncpg", ""))
    try:
        assert await direct.fetchval("SELECT version_num FROM alembic_version") == head_revision()
        # A lock left behind on a pooled server connection would block the next migration.
        # (this database's only: other tests' processes take advisory locks of their own)
        held = await direct.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert held == 0
    finally:
        await direct.close()
