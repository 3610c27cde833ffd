"""The lease methods against the real app's ``/leases`` routes (docs/workers.md): lease,
heartbeat, complete, fail, release and their batch forms, fenced by the token; the long-poll;
worker keys."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from jobqueue.client import AsyncJobQueue, Failure, Forbidden, LeaseLost, NotFound
from tests.client.api.conftest import client_of
from tests.conftest import AppClient, AppFactory
from tests.helpers import wait_until

WORKER_KEY = "Wk3q9ZL_rT0vBn8xYp2mJc7sHd4gFa6eUiOz1N5lKQw"
OTHER_WORKER_KEY = "Pz8mX2vQ_tY7rN4bLc1kJh6sGd9fWa3eUoIi5MnBqRt"
ADMIN_KEY = "46F47OQZx4w-6A3Z4iiQhuMkCtj5d13guRxeAwlSb90"
KEYS = json.dumps(
    [
        {"name": "ops", "role": "admin", "key": ADMIN_KEY},
        {"name": "img", "role": "worker", "key": WORKER_KEY, "queues": ["images"]},
        {"name": "other", "role": "worker", "key": OTHER_WORKER_KEY},
    ]
)


async def remote_app(start_app: AppFactory, **overrides: Any) -> AppClient:
    """An app without workers of its own; its remote queues take any task."""
    settings: dict[str, Any] = {
        "workers_enabled": False,
        "queues": "default",
        "remote_queues": "images,node",
        **overrides,
    }
    return await start_app(**settings)


@pytest.fixture
async def app(start_app: AppFactory) -> AppClient:
    return await remote_app(start_app)


@pytest.fixture
async def jq(app: AppClient) -> AsyncIterator[AsyncJobQueue]:
    client = client_of(app)
    yield client
    await client.aclose()


async def job_row(db: asyncpg.Connection, job_id: int) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def test_lease_nothing_due_is_an_empty_batch(jq: AsyncJobQueue) -> None:
    batch = await jq.lease("images", worker="w1", wait_seconds=0.2)

    assert (batch.leases, batch.drain) == ([], False)


async def test_lease_heartbeat_complete_writes_done(
    jq: AsyncJobQueue, db: asyncpg.Connection
) -> None:
    job = await jq.enqueue("resize", {"w": 64}, queue="images")

    batch = await jq.lease(["images"], max_jobs=5, lease_seconds=30, worker="w1")
    (lease,) = batch.leases
    beat = await jq.heartbeat([lease.token], lease_seconds=60)
    report = await jq.complete(lease.token, {"w": 32})
    again = await jq.complete(lease.token, {"w": 0})
    done = await jq.get(job.id)

    assert lease.token.startswith("jl1.")
    assert (lease.job.id, lease.job.queue, lease.job.task) == (job.id, "images", "resize")
    assert (lease.job.payload, lease.job.attempt, lease.job.max_attempts) == ({"w": 64}, 1, 3)
    assert (lease.lease_seconds, lease.heartbeat_seconds) == (30.0, 10.0)
    assert lease.job.timeout_seconds == 300.0
    assert lease.expires_at > done.created_at
    (item,) = beat.leases
    assert (item.token, item.status, item.cancel_requested) == (lease.token, "extended", False)
    assert item.expires_at is not None
    assert item.expires_at > lease.expires_at
    assert beat.drain is False
    assert (report.job_id, report.status, report.repeated) == (job.id, "done", False)
    assert (again.status, again.repeated) == ("done", True)
    assert (done.status, done.result, done.worker_id) == ("done", {"w": 32}, "anonymous/w1")
    assert json.loads((await job_row(db, job.id))["result"]) == {"w": 32}


async def test_lease_fail_not_retryable_ends_failed_with_the_error(jq: AsyncJobQueue) -> None:
    job = await jq.enqueue("resize", queue="images")
    (lease,) = (await jq.lease("images", worker="w1")).leases

    report = await jq.fail(
        lease.token, error_type="ValueError", message="bad image", retryable=False
    )
    failed = await jq.get(job.id)
    (attempt,) = await jq.attempts(job.id)

    assert (report.job_id, report.status, report.repeated) == (job.id, "failed", False)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith("ValueError: bad image")
    assert (attempt.outcome, attempt.error_type, attempt.error_message) == (
        "failed",
        "ValueError",
        "bad image",
    )


async def test_lease_fail_retryable_goes_back_to_todo_after_the_delay(jq: AsyncJobQueue) -> None:
    job = await jq.enqueue("resize", queue="images")
    (lease,) = (await jq.lease("images", worker="w1")).leases

    report = await jq.fail(lease.token, message="later", retry_delay_seconds=3600)
    retried = await jq.get(job.id)

    assert report.status == "todo"
    assert (retried.status, retried.attempts) == ("todo", 1)
    assert (retried.run_at - retried.created_at).total_seconds() > 3000


async def test_lease_release_gives_the_job_back_then_the_lease_is_lost(
    jq: AsyncJobQueue,
) -> None:
    job = await jq.enqueue("resize", queue="images")
    (lease,) = (await jq.lease("images", worker="w1")).leases

    report = await jq.release(lease.token)
    with pytest.raises(LeaseLost) as raised:
        await jq.release(lease.token)
    back = await jq.get(job.id)

    assert (report.job_id, report.status) == (job.id, "todo")
    assert (back.status, back.attempts) == ("todo", 0)
    assert raised.value.code == "lease_lost"


async def test_lease_stale_token_after_rescue_is_lost_and_writes_nothing(
    jq: AsyncJobQueue, db: asyncpg.Connection
) -> None:
    job = await jq.enqueue("resize", queue="images")
    (stale,) = (await jq.lease("images", lease_seconds=1, worker="w1")).leases
    await db.execute(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1", job.id
    )

    async def rescued() -> bool:
        return (await jq.get(job.id)).status == "todo"

    await wait_until(rescued, timeout=10, what="the rescuer")
    (fresh,) = (await jq.lease("images", worker="w2")).leases

    with pytest.raises(LeaseLost) as raised:
        await jq.complete(stale.token, "stale")
    beat = await jq.heartbeat([stale.token, fresh.token])
    (lost_report,) = await jq.complete_many([(stale.token, "stale")])
    report = await jq.complete(fresh.token, "fresh")

    assert fresh.job.attempt == 2
    assert raised.value.status_code == 409
    assert [(item.token, item.status) for item in beat.leases] == [
        (stale.token, "lost"),
        (fresh.token, "extended"),
    ]
    assert (lost_report.lost, lost_report.token) == (True, stale.token)
    assert report.status == "done"
    assert (await jq.get(job.id)).result == "fresh"


async def test_lease_batch_reports_one_item_per_token(jq: AsyncJobQueue) -> None:
    ids = await jq.enqueue_many([{"task": "resize", "queue": "images"} for _ in range(6)])
    leases = (await jq.lease("images", max_jobs=6, worker="w1")).leases
    tokens = [lease.token for lease in leases]

    completed = await jq.complete_many([(tokens[0], 0), (tokens[1], 1)])
    failed = await jq.fail_many(
        [Failure(tokens[2], message="x", retryable=False), Failure(tokens[3], message="y")]
    )
    released = await jq.release_many(tokens[4:])
    statuses = {job_id: (await jq.get(job_id)).status for job_id in ids}

    assert sorted(lease.job.id for lease in leases) == ids
    assert [(r.token, r.status, r.repeated) for r in completed] == [
        (tokens[0], "done", False),
        (tokens[1], "done", False),
    ]
    assert [(r.token, r.status) for r in failed] == [(tokens[2], "failed"), (tokens[3], "todo")]
    assert [(r.token, r.status) for r in released] == [(tokens[4], "todo"), (tokens[5], "todo")]
    by_token = {lease.token: lease.job.id for lease in leases}
    assert [statuses[by_token[t]] for t in tokens] == [
        "done",
        "done",
        "failed",
        "todo",
        "todo",
        "todo",
    ]


async def test_lease_cancel_requested_shows_in_the_heartbeat_and_fail_ends_cancelled(
    jq: AsyncJobQueue,
) -> None:
    job = await jq.enqueue("resize", queue="images")
    (lease,) = (await jq.lease("images", worker="w1")).leases

    asked = await jq.cancel(job.id)
    beat = await jq.heartbeat(lease.token)
    report = await jq.fail(lease.token, message="stopped")

    assert (asked.status, asked.cancel_requested_at is not None) == ("in_progress", True)
    assert beat.leases[0].cancel_requested is True
    assert report.status == "cancelled"
    assert (await jq.get(job.id)).status == "cancelled"


async def test_lease_long_poll_answers_soon_after_an_enqueue(
    app: AppClient, jq: AsyncJobQueue
) -> None:
    waiting = asyncio.create_task(jq.lease("images", wait_seconds=10, worker="w1"))

    async def parked() -> bool:
        return len(app.runtime.leases.waiters) == 1

    await wait_until(parked, timeout=5, what="the lease request to wait")
    started = time.monotonic()
    job = await jq.enqueue("resize", queue="images")
    batch = await waiting

    assert [lease.job.id for lease in batch.leases] == [job.id]
    assert time.monotonic() - started < 1.0


async def test_lease_worker_shows_in_workers_as_remote(jq: AsyncJobQueue) -> None:
    await jq.lease(
        "default",
        tasks=["thumbnail"],
        worker={"name": "thumbs-1", "host": "box-3", "slots": 50},
    )

    listing = await jq.workers()

    remote = [p for p in listing.items if p.role == "remote"]
    assert [(p.worker_id, p.host, p.tasks, p.queues) for p in remote] == [
        ("anonymous/thumbs-1", "box-3", ["thumbnail"], {"default": 50})
    ]


async def test_lease_worker_keys_their_queues_and_their_tokens(start_app: AppFactory) -> None:
    app = await remote_app(start_app, api_keys=KEYS)
    admin = client_of(app, ADMIN_KEY)
    worker, other = client_of(app, WORKER_KEY), client_of(app, OTHER_WORKER_KEY)
    try:
        await admin.enqueue("resize", queue="images")
        with pytest.raises(Forbidden):
            await worker.lease("node", worker="w1")
        with pytest.raises(Forbidden):
            await worker.enqueue("resize", queue="images")
        (lease,) = (await worker.lease("images", worker="w1")).leases
        with pytest.raises(NotFound):
            await other.complete(lease.token, 1)
        with pytest.raises(NotFound):
            await other.heartbeat([lease.token])
        assert (await worker.complete(lease.token, 1)).status == "done"
    finally:
        await asyncio.gather(*(c.aclose() for c in (admin, worker, other)))


async def test_lease_malformed_token_is_not_found(jq: AsyncJobQueue) -> None:
    with pytest.raises(NotFound):
        await jq.complete("jl1.MTIuMS4z", 1)
