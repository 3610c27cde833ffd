"""Job semantics through the API on real PostgreSQL: retries and attempt history, delays,
priority, timeouts, cancellation, idempotency, queues, batches, long-poll waits."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.conftest import AppFactory, Runs
from tests.helpers import one, wait_for_status, wait_until


async def _create(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    response = await client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, object] = response.json()
    return job


# --- retries and attempt history -------------------------------------------------------------


async def test_retry_failed_attempts_are_recorded_with_error_details(
    client: httpx.AsyncClient,
) -> None:
    job = await _create(client, task="fail", payload={"message": "boom"}, max_attempts=3)
    done = await wait_for_status(client, int(str(job["id"])), {"failed"})
    assert done["attempts"] == 3
    assert done["error"] == "RuntimeError: boom"
    attempts = (await client.get(f"/jobs/{job['id']}/attempts")).json()["items"]
    assert [
        (a["attempt"], a["outcome"], a["error_type"], a["error_message"]) for a in attempts
    ] == [
        (1, "retried", "RuntimeError", "boom"),
        (2, "retried", "RuntimeError", "boom"),
        (3, "failed", "RuntimeError", "boom"),
    ]
    assert all(a["traceback"].startswith("Traceback (most recent call last)") for a in attempts)
    assert all("raise RuntimeError" in a["traceback"] for a in attempts)
    assert all(a["started_at"] <= a["finished_at"] for a in attempts)
    assert {a["worker_id"] for a in attempts} == {done["worker_id"]}


async def test_retry_flaky_task_succeeds_on_second_attempt_history_has_both(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    job = await _create(client, task="flaky", payload={"fail_times": 1})
    done = await wait_for_status(client, int(str(job["id"])), {"done"})
    assert (done["attempts"], done["result"], done["error"]) == (2, {"attempt": 2}, None)
    attempts = (await client.get(f"/jobs/{job['id']}/attempts")).json()["items"]
    assert [(a["attempt"], a["outcome"], a["error_message"]) for a in attempts] == [
        (1, "retried", "flaky failure 1"),
        (2, "done", None),
    ]


async def test_retry_backoff_defers_next_attempt(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(backoff_base_seconds=1000, backoff_max_seconds=1000)
    job = await _create(client, task="flaky", payload={"fail_times": 1})

    async def retried() -> bool:
        row = await one(db, "SELECT status, attempts FROM jobs")
        return bool((row["status"], row["attempts"]) == ("todo", 1))

    await wait_until(retried, timeout=10, what="first attempt failed")
    row = await one(
        db, "SELECT run_at - now() AS wait, error, worker_id FROM jobs WHERE id = $1", job["id"]
    )
    assert timedelta(0) <= row["wait"] <= timedelta(seconds=1000)
    assert row["error"] == "ValueError: flaky failure 1"
    assert row["worker_id"] is None


async def test_retry_later_signal_waits_its_delay(client: httpx.AsyncClient) -> None:
    job = await _create(client, task="retry_later", payload={"seconds": 0.5})
    done = await wait_for_status(client, int(str(job["id"])), {"done"})
    attempts = (await client.get(f"/jobs/{job['id']}/attempts")).json()["items"]
    assert [(a["outcome"], a["error_type"]) for a in attempts] == [
        ("retried", "RetryLater"),
        ("done", None),
    ]
    gap = datetime.fromisoformat(attempts[1]["started_at"]) - datetime.fromisoformat(
        attempts[0]["finished_at"]
    )
    assert gap >= timedelta(seconds=0.5)
    assert done["attempts"] == 2


async def test_discard_signal_fails_at_once(client: httpx.AsyncClient, runs: Runs) -> None:
    job = await _create(client, task="discard", max_attempts=5)
    done = await wait_for_status(client, int(str(job["id"])), {"failed"})
    assert (done["attempts"], done["error"]) == (1, "Discard: not worth retrying")
    assert runs.by_job == {job["id"]: 1}


async def test_retry_endpoint_failed_job_runs_again_with_fresh_attempts(
    client: httpx.AsyncClient,
) -> None:
    job = await _create(client, task="fails_first_run", max_attempts=1)
    await wait_for_status(client, int(str(job["id"])), {"failed"})
    response = await client.post(f"/jobs/{job['id']}/retry")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["attempts"], body["error"]) == ("todo", 0, None)
    done = await wait_for_status(client, int(str(job["id"])), {"done"})
    assert (done["attempts"], done["result"]) == (1, "second run")
    attempts = (await client.get(f"/jobs/{job['id']}/attempts")).json()["items"]
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "failed"), (1, "done")]


async def test_retry_endpoint_done_job_is_409(client: httpx.AsyncClient) -> None:
    job = await _create(client)
    await wait_for_status(client, int(str(job["id"])), {"done"})
    response = await client.post(f"/jobs/{job['id']}/retry")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"job {job['id']} is done; only failed or cancelled jobs can be retried"
    }


async def test_retry_endpoint_absent_job_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/jobs/999999/retry")).status_code == 404


async def test_attempts_of_absent_job_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/jobs/999999/attempts")).status_code == 404


# --- delays and priority ---------------------------------------------------------------------


async def test_delay_seconds_job_is_not_claimed_before_its_time(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    job = await _create(client, task="count", delay_seconds=0.6)
    done = await wait_for_status(client, int(str(job["id"])), {"done"})
    started = datetime.fromisoformat(str(done["started_at"]))
    run_at = datetime.fromisoformat(str(done["run_at"]))
    created = datetime.fromisoformat(str(done["created_at"]))
    assert run_at - created == timedelta(seconds=0.6)
    assert started >= run_at
    # claimed within the poll interval (0.2 s in tests) after it came due, with slack
    assert started - run_at < timedelta(seconds=1.5)


async def test_run_at_in_future_stays_todo(client: httpx.AsyncClient) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    job = await _create(client, task="count", run_at=when.isoformat())
    assert datetime.fromisoformat(str(job["run_at"])) == when
    waited = (await client.get(f"/jobs/{job['id']}", params={"wait_seconds": 0.5})).json()
    assert (waited["status"], waited["attempts"]) == ("todo", 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"run_at": "2030-01-01T00:00:00"}, "timezone"),
        ({"run_at": "tomorrow"}, "RFC 3339 date-time"),
        ({"run_at": "2030-01-01T00:00:00Z", "delay_seconds": 5}, "not both"),
        ({"delay_seconds": -1}, "greater than or equal to 0"),
        ({"delay_seconds": 1e12}, "less than or equal to"),
    ],
)
async def test_delay_bad_values_are_422(
    client: httpx.AsyncClient, db: asyncpg.Connection, body: dict[str, object], message: str
) -> None:
    response = await client.post("/jobs", json=body)
    assert response.status_code == 422
    assert message in response.text
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_priority_one_worker_runs_higher_first_then_oldest(
    start_app: AppFactory, runs: Runs
) -> None:
    producer = await start_app(workers_enabled=False)
    ids = {}
    for name, priority in [("low", -10), ("mid1", 0), ("high", 100), ("mid2", 0), ("min", -100)]:
        ids[name] = (await _create(producer, task="count", priority=priority))["id"]
    await start_app(concurrency=1)

    async def all_ran() -> bool:
        return len(runs.order) == 5

    await wait_until(all_ran, timeout=10, what="5 jobs ran")
    assert runs.order == [ids[n] for n in ["high", "mid1", "mid2", "low", "min"]]


# --- timeouts --------------------------------------------------------------------------------


async def test_timeout_sync_task_attempt_times_out_and_late_result_is_ignored(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    job = await _create(
        client, task="sleep_sync", payload={"seconds": 1}, timeout_seconds=0.2, max_attempts=1
    )
    done = await wait_for_status(client, int(str(job["id"])), {"failed"})
    assert done["error"] == "TimeoutError: attempt exceeded timeout_seconds=0.2"
    await asyncio.sleep(1.2)  # let the thread finish: its late "late" result must not land
    row = await one(db, "SELECT status, result FROM jobs")
    assert (row["status"], row["result"]) == ("failed", None)


async def test_timeout_default_comes_from_settings(start_app: AppFactory) -> None:
    client = await start_app(default_timeout_seconds=0.3)
    job = await _create(client, task="block", payload={"seconds": 30}, max_attempts=1)
    assert job["timeout_seconds"] == 0.3
    done = await wait_for_status(client, int(str(job["id"])), {"failed"})
    assert done["error"] == "TimeoutError: attempt exceeded timeout_seconds=0.3"


# --- cancellation ----------------------------------------------------------------------------


async def test_cancel_todo_job_is_cancelled_at_once(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    job = await _create(client, task="count")
    response = await client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["finished_at"] is not None
    again = await client.post(f"/jobs/{job['id']}/cancel")
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    assert again.json()["finished_at"] == body["finished_at"]


async def test_cancel_running_job_in_other_process_ends_cancelled(
    start_app: AppFactory, runs: Runs
) -> None:
    api = await start_app(workers_enabled=False)
    await start_app(poll_interval_seconds=0.2)
    job = await _create(api, task="block", payload={"seconds": 60}, max_attempts=3)

    async def running() -> bool:
        return runs.by_job.get(int(str(job["id"]))) == 1

    await wait_until(running, timeout=10, what="job running")
    response = await api.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "in_progress"
    assert response.json()["cancel_requested_at"] is not None
    done = (await api.get(f"/jobs/{job['id']}", params={"wait_seconds": 5})).json()
    assert done["status"] == "cancelled"
    assert done["attempts"] == 1
    assert done["error"] == "Cancelled: cancelled by request while running"
    attempts = (await api.get(f"/jobs/{job['id']}/attempts")).json()["items"]
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "cancelled")]
    assert runs.by_job == {job["id"]: 1}


async def test_cancel_done_job_is_409(client: httpx.AsyncClient) -> None:
    job = await _create(client)
    await wait_for_status(client, int(str(job["id"])), {"done"})
    response = await client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"job {job['id']} is done; only todo or in_progress jobs can be cancelled"
    }


async def test_cancel_absent_job_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/jobs/999999/cancel")).status_code == 404


async def test_cancelled_job_can_be_retried(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    job = await _create(client, task="count")
    await client.post(f"/jobs/{job['id']}/cancel")
    response = await client.post(f"/jobs/{job['id']}/retry")
    assert (response.status_code, response.json()["status"]) == (200, "todo")
    assert response.json()["cancel_requested_at"] is None


# --- idempotency -----------------------------------------------------------------------------


async def test_idempotency_header_same_request_returns_existing_job(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/jobs", json={"task": "echo", "payload": {"a": 1}}, headers=headers)
    second = await client.post("/jobs", json={"task": "echo", "payload": {"a": 1}}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["location"] == f"/jobs/{first.json()['id']}"
    assert first.json()["idempotency_key"] == "order-42"
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


async def test_idempotency_key_field_works_like_header(client: httpx.AsyncClient) -> None:
    body = {"task": "echo", "idempotency_key": "k1"}
    first = await client.post("/jobs", json=body)
    second = await client.post("/jobs", json={"task": "echo"}, headers={"Idempotency-Key": "k1"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]


async def test_idempotency_same_key_different_payload_is_409(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "k2"}
    first = await client.post("/jobs", json={"payload": {"a": 1}}, headers=headers)
    response = await client.post("/jobs", json={"payload": {"a": 2}}, headers=headers)
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"idempotency key 'k2' was used for job {first.json()['id']} with a different"
        " payload: use a new key for a new job, or resend the original request"
    }
    other_task = await client.post(
        "/jobs", json={"task": "count", "payload": {"a": 1}}, headers=headers
    )
    assert other_task.status_code == 409
    assert "different task" in other_task.text
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


async def test_idempotency_header_and_field_differ_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", json={"idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert response.status_code == 422
    assert "differ" in response.text


async def test_idempotency_50_racing_requests_create_one_job(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False, db_pool_size=5)
    body = {"task": "echo", "payload": {"order": 7}}
    responses = await asyncio.gather(
        *(client.post("/jobs", json=body, headers={"Idempotency-Key": "race"}) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


# --- queues ----------------------------------------------------------------------------------


async def test_queues_each_queue_has_its_own_slots(
    start_app: AppFactory, runs: Runs, db: asyncpg.Connection
) -> None:
    client = await start_app(queues="default=2,emails=1")
    for queue in ["default"] * 4 + ["emails"] * 3:
        await _create(client, task="block", queue=queue, payload={"seconds": 60})

    async def three_running() -> bool:
        return len(runs.by_job) == 3

    await wait_until(three_running, timeout=10, what="3 jobs running")
    rows = await db.fetch(
        "SELECT queue, count(*) AS n FROM jobs WHERE status = 'in_progress' GROUP BY queue"
    )
    assert {row["queue"]: row["n"] for row in rows} == {"default": 2, "emails": 1}
    assert client.pool.concurrency == 3


async def test_queues_process_never_runs_unserved_queue(
    start_app: AppFactory, runs: Runs, db: asyncpg.Connection
) -> None:
    client = await start_app(queues="emails", remote_queues="reports")
    other = await _create(client, task="count", queue="reports")
    mine = await _create(client, task="count", queue="emails")
    await wait_for_status(client, int(str(mine["id"])), {"done"})
    waited = (await client.get(f"/jobs/{other['id']}", params={"wait_seconds": 0.5})).json()
    assert waited["status"] == "todo"
    assert runs.by_job == {mine["id"]: 1}


# --- batches ---------------------------------------------------------------------------------


async def test_batch_10000_jobs_created_in_order(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    specs = [{"task": "echo", "payload": {"i": i}} for i in range(10_000)]
    response = await client.post("/jobs/batch", json={"jobs": specs})
    assert response.status_code == 201
    ids = response.json()["ids"]
    rows = await db.fetch("SELECT id, payload FROM jobs ORDER BY id")
    assert [row["id"] for row in rows] == ids
    assert [json.loads(row["payload"])["i"] for row in rows] == list(range(10_000))


async def test_batch_1000_jobs_one_statement_ids_in_order(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False, remote_queues="q0,q1,q2")
    specs = [{"task": "echo", "queue": f"q{i % 3}", "payload": {"i": i}} for i in range(1000)]
    response = await client.post("/jobs/batch", json={"jobs": specs})
    assert response.status_code == 201
    ids = response.json()["ids"]
    rows = await db.fetch("SELECT id, queue, payload FROM jobs ORDER BY id")
    assert [row["id"] for row in rows] == ids
    assert [(row["queue"], json.loads(row["payload"])["i"]) for row in rows] == [
        (f"q{i % 3}", i) for i in range(1000)
    ]


async def test_batch_over_10000_is_422(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    response = await client.post("/jobs/batch", json={"jobs": [{}] * 10_001})
    assert response.status_code == 422
    assert "at most 10000" in response.text
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_batch_empty_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.post("/jobs/batch", json={"jobs": []})).status_code == 422


async def test_batch_bad_spec_schema_names_index_and_creates_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    specs: list[dict[str, object]] = [{}, {}, {}, {"priority": "high"}]
    response = await client.post("/jobs/batch", json={"jobs": specs})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "jobs", 3, "priority"]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_batch_unknown_task_names_index_and_creates_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/jobs/batch", json={"jobs": [{}, {}, {"task": "nope"}]})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("jobs[2]: unknown task 'nope'")
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_batch_idempotency_keys_repeat_and_match_existing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    existing = await _create(client, task="echo", idempotency_key="a")
    specs = [
        {"task": "echo", "idempotency_key": "a"},
        {"task": "echo", "idempotency_key": "b"},
        {"task": "echo", "idempotency_key": "b"},
        {"task": "echo"},
    ]
    ids = (await client.post("/jobs/batch", json={"jobs": specs})).json()["ids"]
    assert ids[0] == existing["id"]
    assert ids[1] == ids[2]
    assert len(set(ids)) == 3
    assert await db.fetchval("SELECT count(*) FROM jobs") == 3


async def test_batch_sent_again_with_every_key_matching_is_200_with_the_same_ids(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    specs = [
        {"task": "echo", "payload": {"n": 1}, "idempotency_key": "r1"},
        {"task": "echo", "payload": {"n": 2}, "idempotency_key": "r2"},
        {"task": "echo", "payload": {"n": 2}, "idempotency_key": "r2"},
    ]
    first = await client.post("/jobs/batch", json={"jobs": specs})
    again = await client.post("/jobs/batch", json={"jobs": specs})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(set(first.json()["ids"])) == 2
    assert await db.fetchval("SELECT count(*) FROM jobs") == 2


async def test_batch_of_replays_and_one_new_job_is_201(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    existing = await _create(client, task="echo", idempotency_key="a")
    response = await client.post(
        "/jobs/batch",
        json={"jobs": [{"task": "echo", "idempotency_key": "a"}, {"task": "echo"}]},
    )
    assert response.status_code == 201
    assert response.json()["ids"][0] == existing["id"]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 2


async def test_batch_of_replays_and_one_new_key_is_201(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _create(client, task="echo", idempotency_key="a")
    specs = [{"task": "echo", "idempotency_key": "a"}, {"task": "echo", "idempotency_key": "b"}]
    response = await client.post("/jobs/batch", json={"jobs": specs})
    assert response.status_code == 201
    assert await db.fetchval("SELECT count(*) FROM jobs") == 2


async def test_batch_idempotency_conflict_rolls_back_whole_batch(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _create(client, task="echo", idempotency_key="a")
    specs = [{"task": "echo"}, {"task": "count", "idempotency_key": "a"}]
    response = await client.post("/jobs/batch", json={"jobs": specs})
    assert response.status_code == 409
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


async def test_batch_key_of_existing_job_with_other_payload_is_409_naming_the_item(
    client: httpx.AsyncClient,
) -> None:
    existing = await _create(client, task="echo", payload={"n": 1}, idempotency_key="k7")
    specs = [{"task": "echo"}, {"task": "echo", "payload": {"n": 2}, "idempotency_key": "k7"}]
    response = await client.post("/jobs/batch", json={"jobs": specs})
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"jobs[1]: idempotency key 'k7' was used for job {existing['id']} with a "
        "different payload: use a new key for a new job, or resend the original request"
    }


# --- waiting ---------------------------------------------------------------------------------


async def test_wait_returns_when_job_finishes_in_other_process(start_app: AppFactory) -> None:
    api = await start_app(workers_enabled=False)
    await start_app()
    job = await _create(api, task="block", payload={"seconds": 0.3})
    waited = await asyncio.wait_for(
        api.get(f"/jobs/{job['id']}", params={"wait_seconds": 30}), timeout=10
    )
    body = waited.json()
    assert (body["status"], body["result"]) == ("done", "finished")


async def test_wait_times_out_with_current_status(client: httpx.AsyncClient) -> None:
    job = await _create(client, task="block", payload={"seconds": 60})
    waited = (await client.get(f"/jobs/{job['id']}", params={"wait_seconds": 0.3})).json()
    assert waited["status"] in {"todo", "in_progress"}


@pytest.mark.parametrize("value", ["0", "61", "-1", "x"])
async def test_wait_seconds_out_of_range_is_422(client: httpx.AsyncClient, value: str) -> None:
    job = await _create(client)
    response = await client.get(f"/jobs/{job['id']}", params={"wait_seconds": value})
    assert response.status_code == 422


async def test_wait_absent_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/999999", params={"wait_seconds": 1})
    assert response.status_code == 404


async def test_batch_same_key_twice_for_different_jobs_is_422_naming_the_batch(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    specs = [
        {"task": "echo", "idempotency_key": "bc"},
        {"task": "echo", "payload": {"a": 1}, "idempotency_key": "bc"},
    ]
    response = await client.post("/jobs/batch", json={"jobs": specs})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "jobs[1]: idempotency key 'bc' is used twice in this batch for jobs with a "
        "different payload: give each job its own key"
    }
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
