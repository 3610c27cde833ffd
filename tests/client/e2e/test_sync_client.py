"""JobQueue (the sync client) against a real ``jobqueue serve`` process over TCP: the calls a
producer and a remote worker make, long-polls longer than the socket timeout, and a service
that is not there."""

from __future__ import annotations

import pytest

from jobqueue.client import ConnectionFailed, JobFailed, JobQueue, JobSpec
from tests.e2e.procs import ServerFactory, free_port


async def test_sync_client_producer_calls_against_a_server(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})

    with JobQueue(server.url) as jq:
        job = jq.enqueue("echo", {"a": 1})
        result = jq.wait(job.id, timeout=15)
        ids = jq.enqueue_many([JobSpec("echo", {"n": n}) for n in range(3)])
        for job_id in ids:
            jq.wait(job_id, timeout=15)
        listed = [found.id for found in jq.list(status="done", page_size=2)]
        failing = jq.enqueue("fail", {"message": "boom"}, max_attempts=1)
        with pytest.raises(JobFailed) as failed:
            jq.wait(failing.id, timeout=15)
        attempts = jq.attempts(failing.id)
        queues = jq.queues()
        delayed = jq.enqueue("echo", delay_seconds=3600, idempotency_key="k1")
        same = jq.enqueue("echo", delay_seconds=3600, idempotency_key="k1")
        cancelled = jq.cancel(delayed.id)
        retried = jq.retry(delayed.id)
        processes = jq.workers()
        jq.create_schedule("nightly", "0 3 * * *", "echo", timezone="Europe/Paris")
        schedules = jq.schedules()
        jq.delete_schedule("nightly")

    assert result == {"echo": {"a": 1}}
    assert listed == [*reversed(ids), job.id]
    assert failed.value.error is not None
    assert failed.value.error.startswith("RuntimeError: boom")
    assert [(a.attempt, a.outcome, a.error_message) for a in attempts] == [(1, "failed", "boom")]
    assert same.id == delayed.id
    assert (cancelled.status, retried.status, retried.attempts) == ("cancelled", "todo", 0)
    (default,) = queues
    assert (default.name, default.counts["done"], default.counts["failed"]) == ("default", 4, 1)
    assert (default.counts["todo"], default.counts["in_progress"]) == (0, 0)
    assert [p.role for p in processes.items] == ["serve"]
    assert [(s.name, s.timezone) for s in schedules] == [("nightly", "Europe/Paris")]


async def test_sync_client_long_poll_outlasts_the_socket_timeout(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})

    with JobQueue(server.url, timeout=1.0) as jq:
        first = jq.enqueue("sleep", {"seconds": 2})
        done = jq.get(first.id, wait_seconds=10)
        second = jq.enqueue("sleep", {"seconds": 2})
        result = jq.wait(second.id, timeout=10)

    assert (done.status, second.id) == ("done", first.id + 1)
    assert result == done.result


async def test_sync_client_remote_worker_round_trip(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_REMOTE_QUEUES": "images",
        }
    )

    with JobQueue(server.url) as producer, JobQueue(server.url) as worker:
        job = producer.enqueue("resize", {"w": 640}, queue="images")
        batch = worker.lease("images", tasks=["resize"], wait_seconds=5, worker="img-1")
        (lease,) = batch.leases
        beat = worker.heartbeat(lease.token)
        report = worker.complete(lease.token, {"w": lease.job.payload["w"] // 2})
        result = producer.wait(job.id, timeout=5)
        remote = [p for p in producer.workers().items if p.role == "remote"]

    assert lease.job.id == job.id
    assert [item.status for item in beat.leases] == ["extended"]
    assert (report.status, report.repeated) == ("done", False)
    assert result == {"w": 320}
    assert [p.worker_id for p in remote] == ["anonymous/img-1"]


def test_sync_client_nothing_listening_is_connection_failed() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with JobQueue(url, retries=1) as jq, pytest.raises(ConnectionFailed) as raised:
        jq.get(1)

    assert raised.value.request_sent is False
    assert str(raised.value).startswith(f"cannot reach GET {url}/jobs/1: ")
