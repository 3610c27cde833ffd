"""AsyncJobQueue against the real app: enqueue, get, wait, list, attempts, cancel, retry,
idempotency, and the errors the service answers, with the values it stores."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from jobqueue.client import (
    Conflict,
    Forbidden,
    IdempotencyConflict,
    JobCancelled,
    JobFailed,
    JobSpec,
    NotFound,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from tests.api.test_auth import ADMIN_KEY, READ_KEY, WRITE_KEY, keyed_app
from tests.client.api.conftest import JobQueueFactory, client_of
from tests.conftest import AppClient, AppFactory


async def test_jobs_enqueue_then_wait_returns_the_result(connect: JobQueueFactory) -> None:
    jq = await connect()

    job = await jq.enqueue("echo", {"n": 1}, description="Process this task", priority=5)
    result = await jq.wait(job.id, timeout=15)
    done = await jq.get(job.id)

    assert (job.task, job.queue, job.status, job.priority) == ("echo", "default", "todo", 5)
    assert job.description == "Process this task"
    assert result == {"echo": {"n": 1}}
    assert (done.status, done.result, done.attempts, done.error) == ("done", result, 1, None)
    assert done.created_at.tzinfo is not None
    assert done.started_at is not None
    assert done.finished_at is not None
    assert done.finished_at >= done.started_at >= done.created_at
    assert done.raw["result"] == {"echo": {"n": 1}}


async def test_jobs_get_long_poll_answers_once_done(connect: JobQueueFactory) -> None:
    jq = await connect()
    job = await jq.enqueue("block", {"seconds": 0.3})

    done = await jq.get(job.id, wait_seconds=10)

    assert (done.status, done.result) == ("done", "finished")


async def test_jobs_wait_failed_raises_job_failed_with_error_and_attempts(
    connect: JobQueueFactory,
) -> None:
    jq = await connect()
    job = await jq.enqueue("fail", {"message": "boom"}, max_attempts=1)

    with pytest.raises(JobFailed) as raised:
        await jq.wait(job.id, timeout=15)
    attempts = await jq.attempts(job.id)

    assert raised.value.error is not None
    assert raised.value.error.startswith("RuntimeError: boom")
    assert (raised.value.job.status, raised.value.job.attempts) == ("failed", 1)
    (attempt,) = attempts
    assert (attempt.attempt, attempt.outcome) == (1, "failed")
    assert (attempt.error_type, attempt.error_message) == ("RuntimeError", "boom")
    assert attempt.finished_at is not None


async def test_jobs_wait_timeout_then_cancel_ends_cancelled(connect: JobQueueFactory) -> None:
    jq = await connect()
    job = await jq.enqueue("block", {"seconds": 60})

    with pytest.raises(WaitTimeout) as raised:
        await jq.wait(job.id, timeout=0.5)
    cancelled = await jq.cancel(job.id)
    with pytest.raises(JobCancelled) as ended:
        await jq.wait(job.id, timeout=15)

    assert raised.value.job is not None
    assert raised.value.job.status in {"todo", "in_progress"}
    assert cancelled.cancel_requested_at is not None or cancelled.status == "cancelled"
    assert ended.value.job.status == "cancelled"


async def test_jobs_cancel_todo_then_retry_then_retry_again_conflicts(
    connect: JobQueueFactory,
) -> None:
    jq = await connect(workers_enabled=False)
    job = await jq.enqueue("echo", delay_seconds=3600)

    cancelled = await jq.cancel(job.id)
    again = await jq.cancel(job.id)
    retried = await jq.retry(job.id)
    with pytest.raises(Conflict) as raised:
        await jq.retry(job.id)

    assert (cancelled.status, again.status) == ("cancelled", "cancelled")
    assert (retried.status, retried.attempts) == ("todo", 0)
    assert raised.value.status_code == 409
    assert raised.value.detail == (
        f"job {job.id} is todo; only failed or cancelled jobs can be retried"
    )


async def test_jobs_idempotency_key_same_request_same_job_other_payload_conflicts(
    connect: JobQueueFactory,
) -> None:
    jq = await connect(workers_enabled=False)

    first = await jq.enqueue("echo", {"order": 42}, idempotency_key="order-42")
    second = await jq.enqueue("echo", {"order": 42}, idempotency_key="order-42")
    with pytest.raises(IdempotencyConflict) as raised:
        await jq.enqueue("echo", {"order": 43}, idempotency_key="order-42")

    assert second.id == first.id
    assert first.idempotency_key == "order-42"
    assert f"was used for job {first.id} with a different payload" in str(raised.value.detail)


async def test_jobs_enqueue_unknown_task_is_validation_failed(connect: JobQueueFactory) -> None:
    jq = await connect(workers_enabled=False)

    with pytest.raises(ValidationFailed) as raised:
        await jq.enqueue("nope")

    assert str(raised.value.detail).startswith("unknown task 'nope'; known tasks: ")


async def test_jobs_run_at_datetime_is_kept(connect: JobQueueFactory) -> None:
    jq = await connect(workers_enabled=False)
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)

    job = await jq.enqueue("echo", run_at=when)

    assert job.run_at == when


async def test_jobs_get_missing_is_not_found(connect: JobQueueFactory) -> None:
    jq = await connect(workers_enabled=False)

    with pytest.raises(NotFound) as raised:
        await jq.get(424242)

    assert raised.value.detail == "job 424242 does not exist"


async def test_jobs_enqueue_many_then_list_walks_every_page(connect: JobQueueFactory) -> None:
    jq = await connect(workers_enabled=False, queues="default,emails")
    specs = [JobSpec("echo", {"n": n}, queue="emails" if n % 2 else None) for n in range(5)]

    ids = await jq.enqueue_many(specs)
    every = [job.id async for job in jq.list(page_size=2)]
    emails = [job.id async for job in jq.list(queue="emails", page_size=1)]
    first_three = [job.id async for job in jq.list(limit=3, page_size=2)]
    page = await jq.list_page(status="todo", limit=2)

    assert len(ids) == 5
    assert every == list(reversed(ids))
    assert emails == [ids[3], ids[1]]
    assert first_three == list(reversed(ids))[:3]
    assert [job.id for job in page.items] == [ids[4], ids[3]]
    assert page.next_cursor is not None


async def test_jobs_enqueue_many_keyed_replay_gives_the_same_ids(
    connect: JobQueueFactory,
) -> None:
    jq = await connect(workers_enabled=False)
    specs = [{"task": "echo", "idempotency_key": f"k{n}"} for n in range(3)]

    first = await jq.enqueue_many(specs)
    replay = await jq.enqueue_many(specs)

    assert replay == first


async def test_jobs_keys_and_roles(start_app: AppFactory) -> None:
    app = await keyed_app(start_app)
    assert isinstance(app, AppClient)
    anonymous, reader = client_of(app), client_of(app, READ_KEY)
    writer, admin = client_of(app, WRITE_KEY), client_of(app, ADMIN_KEY)
    try:
        with pytest.raises(Unauthorized):
            await anonymous.queues()
        job = await writer.enqueue("echo", delay_seconds=3600)
        assert (await reader.get(job.id)).id == job.id
        with pytest.raises(Forbidden):
            await reader.cancel(job.id)
        assert (await admin.cancel(job.id)).status == "cancelled"
    finally:
        await asyncio.gather(*(c.aclose() for c in (anonymous, reader, writer, admin)))
