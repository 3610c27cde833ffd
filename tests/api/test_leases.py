"""The HTTP lease API (``/leases``): lease, heartbeat, complete, fail, release, fenced by the
lease token; worker keys; long-polls; remote workers in the registry."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import httpx

from tests.api.test_auth import ADMIN_KEY, READ_KEY, WRITE_KEY, bearer
from tests.conftest import AppClient, AppFactory
from tests.helpers import wait_until

WORKER_KEY = "Wk3q9ZL_rT0vBn8xYp2mJc7sHd4gFa6eUiOz1N5lKQw"
OTHER_WORKER_KEY = "Pz8mX2vQ_tY7rN4bLc1kJh6sGd9fWa3eUoIi5MnBqRt"
KEYS = json.dumps(
    [
        {"name": "dash", "role": "read", "key": READ_KEY},
        {"name": "ci", "role": "write", "key": WRITE_KEY},
        {"name": "ops", "role": "admin", "key": ADMIN_KEY},
        {"name": "img", "role": "worker", "key": WORKER_KEY, "queues": ["images"]},
        {"name": "other", "role": "worker", "key": OTHER_WORKER_KEY},
    ]
)


async def remote_app(start_app: AppFactory, **overrides: Any) -> AppClient:
    """An API-only app whose remote queues take any task."""
    settings: dict[str, Any] = {
        "workers_enabled": False,
        "queues": "default",
        "remote_queues": "images,node",
        **overrides,
    }
    return await start_app(**settings)


async def enqueue(client: httpx.AsyncClient, queue: str = "images", **body: Any) -> int:
    response = await client.post(
        "/jobs", json={"task": "resize", "queue": queue, **body}, headers=bearer(ADMIN_KEY)
    )
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    return job_id


async def lease(client: httpx.AsyncClient, key: str | None = None, **body: Any) -> httpx.Response:
    request = {"queues": ["images"], "worker": "w1", **body}
    headers = bearer(key) if key else {}
    return await client.post("/leases", json=request, headers=headers)


async def job_row(db: asyncpg.Connection, job_id: int) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def test_lease_complete_writes_done_with_result(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app)
    job_id = await enqueue(client, payload={"w": 64})
    answer = await lease(client, max_jobs=5, lease_seconds=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["drain"] is False
    (item,) = body["leases"]
    assert item["job"] == {
        "id": job_id,
        "queue": "images",
        "task": "resize",
        "payload": {"w": 64},
        "attempt": 1,
        "max_attempts": 3,
        "timeout_seconds": 300.0,
    }
    assert item["lease_seconds"] == 30.0
    assert item["heartbeat_seconds"] == 10.0
    assert item["token"].startswith("jl1.")
    row = await job_row(db, job_id)
    assert (row["status"], row["worker_id"], row["attempts"]) == ("in_progress", "anonymous/w1", 1)
    done = await client.post(f"/leases/{item['token']}/complete", json={"result": {"ok": 1}})
    assert done.status_code == 200, done.text
    assert done.json() == {"job_id": job_id, "status": "done", "repeated": False}
    row = await job_row(db, job_id)
    assert (row["status"], json.loads(row["result"])) == ("done", {"ok": 1})


async def test_lease_repeated_complete_is_200_and_changes_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app)
    job_id = await enqueue(client)
    token = (await lease(client)).json()["leases"][0]["token"]
    first = await client.post(f"/leases/{token}/complete", json={"result": 1})
    finished_at = (await job_row(db, job_id))["finished_at"]
    again = await client.post(f"/leases/{token}/complete", json={"result": 2})
    assert first.json()["repeated"] is False
    assert again.status_code == 200
    assert again.json() == {"job_id": job_id, "status": "done", "repeated": True}
    row = await job_row(db, job_id)
    assert (json.loads(row["result"]), row["finished_at"]) == (1, finished_at)


async def test_lease_stale_complete_after_rescue_is_409_and_changes_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app)
    job_id = await enqueue(client)
    stale = (await lease(client, lease_seconds=1)).json()["leases"][0]["token"]
    await db.execute(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1", job_id
    )
    await wait_until(
        lambda: _status_is(db, job_id, "todo"), timeout=10, what="the rescuer of the API role"
    )
    fresh = (await lease(client, worker="w2")).json()["leases"][0]
    assert fresh["job"]["attempt"] == 2
    refused = await client.post(f"/leases/{stale}/complete", json={"result": "stale"})
    assert refused.status_code == 409
    assert refused.json()["code"] == "lease_lost"
    assert "in_progress" in refused.json()["detail"]
    row = await job_row(db, job_id)
    assert (row["status"], row["worker_id"], row["result"]) == ("in_progress", "anonymous/w2", None)
    stale_beat = await client.post(f"/leases/{stale}/heartbeat")
    assert stale_beat.status_code == 409
    ok = await client.post(f"/leases/{fresh['token']}/complete", json={"result": "fresh"})
    assert ok.json()["status"] == "done"
    assert json.loads((await job_row(db, job_id))["result"]) == "fresh"


async def _status_is(db: asyncpg.Connection, job_id: int, status: str) -> bool:
    return bool((await job_row(db, job_id))["status"] == status)


async def test_lease_fail_retryable_goes_back_to_todo_then_failed_at_last_attempt(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app)
    job_id = await enqueue(client, max_attempts=2)
    token = (await lease(client)).json()["leases"][0]["token"]
    failed = await client.post(
        f"/leases/{token}/fail",
        json={"error_type": "ValueError", "message": "bad", "retry_delay_seconds": 0},
    )
    assert failed.json() == {"job_id": job_id, "status": "todo", "repeated": False}
    again = await client.post(f"/leases/{token}/fail", json={"message": "bad"})
    assert again.json()["repeated"] is True
    token = (await lease(client)).json()["leases"][0]["token"]
    last = await client.post(f"/leases/{token}/fail", json={"error_type": "E", "message": "m"})
    assert last.json()["status"] == "failed"
    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"], row["error"]) == ("failed", 2, "E: m")
    outcomes = await db.fetch(
        "SELECT attempt, outcome, error_type FROM job_attempts WHERE job_id = $1 ORDER BY id",
        job_id,
    )
    assert [tuple(r) for r in outcomes] == [(1, "retried", "ValueError"), (2, "failed", "E")]


async def test_lease_fail_not_retryable_ends_failed_at_once(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app)
    job_id = await enqueue(client)
    token = (await lease(client)).json()["leases"][0]["token"]
    answer = await client.post(f"/leases/{token}/fail", json={"retryable": False})
    assert answer.json()["status"] == "failed"
    assert (await job_row(db, job_id))["attempts"] == 1


async def test_lease_release_gives_the_attempt_back(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app)
    job_id = await enqueue(client)
    token = (await lease(client)).json()["leases"][0]["token"]
    released = await client.post("/leases/release", json={"tokens": [token]})
    assert released.json()["leases"] == [
        {"token": token, "job_id": job_id, "status": "todo", "repeated": False}
    ]
    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("todo", 0, None)
    assert (await client.post(f"/leases/{token}/release")).status_code == 409


async def test_lease_batch_heartbeat_extends_and_reports_cancel(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app)
    first, second = await enqueue(client), await enqueue(client)
    tokens = [item["token"] for item in (await lease(client, max_jobs=2)).json()["leases"]]
    before = {r["id"]: r["lease_expires_at"] for r in await db.fetch("SELECT * FROM jobs")}
    cancel = await client.post(f"/jobs/{second}/cancel", headers=bearer(ADMIN_KEY))
    assert cancel.status_code == 202, cancel.text  # running: the worker is asked to stop
    beat = await client.post("/leases/heartbeat", json={"tokens": tokens, "lease_seconds": 120})
    assert beat.status_code == 200, beat.text
    items = beat.json()["leases"]
    assert [(i["status"], i["cancel_requested"]) for i in items] == [
        ("extended", False),
        ("extended", True),
    ]
    after = {r["id"]: r["lease_expires_at"] for r in await db.fetch("SELECT * FROM jobs")}
    assert after[first] > before[first]
    assert (after[first] - before[first]).total_seconds() > 60
    reported = await client.post(f"/leases/{tokens[1]}/fail", json={"message": "stopped"})
    assert reported.json()["status"] == "cancelled"


async def test_lease_long_poll_answers_soon_after_an_enqueue(start_app: AppFactory) -> None:
    client = await remote_app(start_app)
    waiting = asyncio.create_task(lease(client, wait_seconds=10))
    await wait_until(lambda: _waiting(client), timeout=5, what="the lease request to wait")
    started = time.monotonic()
    job_id = await enqueue(client)
    answer = await waiting
    elapsed = time.monotonic() - started
    assert answer.json()["leases"][0]["job"]["id"] == job_id
    assert elapsed < 1.0  # woken by the enqueue, not by the end of the wait


async def _waiting(client: AppClient) -> bool:
    return len(client.runtime.leases.waiters) == 1


async def test_lease_long_poll_ends_empty_after_the_wait(start_app: AppFactory) -> None:
    client = await remote_app(start_app)
    answer = await lease(client, wait_seconds=0.3)
    assert answer.json() == {"leases": [], "drain": False, "completed": [], "failed": []}


async def test_lease_worker_key_only_its_queues_and_nothing_else(start_app: AppFactory) -> None:
    client = await remote_app(start_app, api_keys=KEYS)
    await enqueue(client)
    assert (await lease(client, WORKER_KEY, queues=["node"])).status_code == 403
    assert (await lease(client, READ_KEY)).status_code == 403
    assert (await lease(client, WRITE_KEY)).status_code == 403
    enqueue_as_worker = await client.post(
        "/jobs", json={"task": "resize", "queue": "images"}, headers=bearer(WORKER_KEY)
    )
    assert enqueue_as_worker.status_code == 403
    assert (await client.get("/jobs", headers=bearer(WORKER_KEY))).status_code == 403
    token = (await lease(client, WORKER_KEY)).json()["leases"][0]["token"]
    foreign = await client.post(
        f"/leases/{token}/complete", json={"result": 1}, headers=bearer(OTHER_WORKER_KEY)
    )
    assert foreign.status_code == 404
    beat = await client.post(
        "/leases/heartbeat", json={"tokens": [token]}, headers=bearer(OTHER_WORKER_KEY)
    )
    assert beat.status_code == 404
    own = await client.post(
        f"/leases/{token}/complete", json={"result": 1}, headers=bearer(WORKER_KEY)
    )
    assert own.json()["status"] == "done"


async def test_lease_malformed_token_is_404(start_app: AppFactory) -> None:
    client = await remote_app(start_app)
    for token in ("nope", "jl1.!!!", "jl1.MTIuMS4z", "jl1." + "A" * 600):
        answer = await client.post(f"/leases/{token}/complete", json={"result": 1})
        assert answer.status_code in (404, 422), (token, answer.text)


async def test_lease_result_too_large_is_422_and_writes_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app, max_result_bytes=100)
    job_id = await enqueue(client)
    token = (await lease(client)).json()["leases"][0]["token"]
    answer = await client.post(f"/leases/{token}/complete", json={"result": "x" * 200})
    assert answer.status_code == 422
    assert "JOBQUEUE_MAX_RESULT_BYTES" in answer.json()["detail"]
    assert (await job_row(db, job_id))["status"] == "in_progress"


async def test_lease_remote_worker_registers_and_its_tasks_are_accepted(
    start_app: AppFactory,
) -> None:
    client = await remote_app(start_app)
    refused = await client.post("/jobs", json={"task": "thumbnail", "queue": "default"})
    assert refused.status_code == 422
    answer = await client.post(
        "/leases",
        json={
            "queues": ["default"],
            "tasks": ["thumbnail"],
            "worker": {"name": "thumbs-1", "host": "box-3", "slots": 50},
        },
    )
    assert answer.status_code == 200, answer.text
    accepted = await client.post("/jobs", json={"task": "thumbnail", "queue": "default"})
    assert accepted.status_code == 201, accepted.text
    workers = (await client.get("/workers")).json()
    remote = [w for w in workers["items"] if w["role"] == "remote"]
    assert [(w["worker_id"], w["host"], w["tasks"], w["queues"]) for w in remote] == [
        ("anonymous/thumbs-1", "box-3", ["thumbnail"], {"default": 50})
    ]


async def test_lease_bad_bodies_are_422(start_app: AppFactory) -> None:
    client = await remote_app(start_app)
    bad = [
        {"worker": "w"},
        {"queues": [], "worker": "w"},
        {"queues": ["images"], "worker": "has space"},
        {"queues": ["images"], "worker": "w", "max_jobs": 0},
        {"queues": ["images"], "worker": "w", "max_jobs": True},
        {"queues": ["images"], "worker": "w", "wait_seconds": 21},
        {"queues": ["images"], "worker": "w", "lease_seconds": 0.5},
        {"queues": ["images"], "worker": "w", "extra": 1},
        {"queues": ["x" * 101], "worker": "w"},
    ]
    for body in bad:
        answer = await client.post("/leases", json=body)
        assert answer.status_code == 422, (body, answer.text)


async def test_lease_long_polls_per_key_are_capped_with_429(start_app: AppFactory) -> None:
    client = await remote_app(start_app, max_lease_polls_per_key=2)
    waits = [asyncio.create_task(lease(client, wait_seconds=5)) for _ in range(2)]
    remote = client.runtime.leases
    await wait_until(lambda: _count_is(remote.waiters, 2), timeout=5, what="two waiting")
    third = await lease(client, wait_seconds=5)
    assert third.status_code == 429
    assert third.headers["retry-after"] == "1"
    no_wait = await lease(client)  # a lease without a wait is never refused for the cap
    assert no_wait.status_code == 200
    await enqueue(client)
    await enqueue(client)
    answers = await asyncio.gather(*waits)
    assert sorted(len(a.json()["leases"]) for a in answers) == [1, 1]


async def _count_is(waiters: Any, count: int) -> bool:
    return len(waiters) == count


async def test_lease_waiting_requests_answer_drain_when_the_service_stops(
    start_app: AppFactory,
) -> None:
    client = await remote_app(start_app)
    waiting = asyncio.create_task(lease(client, wait_seconds=15))
    await wait_until(lambda: _count_is(client.runtime.leases.waiters, 1), timeout=5, what="wait")
    started = time.monotonic()
    client.runtime.leases.drain()
    answer = await waiting
    assert time.monotonic() - started < 1.0
    assert answer.json() == {"leases": [], "drain": True, "completed": [], "failed": []}
    await enqueue(client)
    assert (await lease(client)).json() == {
        "leases": [],
        "drain": True,
        "completed": [],
        "failed": [],
    }


async def test_lease_500_idle_long_polls_hold_no_database_connection(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app, db_pool_size=5)
    database = await db.fetchval("SELECT current_database()")
    waits = [asyncio.create_task(lease(client, wait_seconds=20)) for _ in range(500)]
    remote = client.runtime.leases
    await wait_until(lambda: _count_is(remote.waiters, 500), timeout=30, what="500 waiting")
    busy = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
        " AND state <> 'idle' AND query NOT ILIKE 'LISTEN%'",
        database,
    )
    connections = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )
    assert busy == 0
    assert connections <= 5 + 1 + 5  # the pool, its overflow, and the LISTEN connection
    job_id = await enqueue(client)
    await wait_until(lambda: _status_is(db, job_id, "in_progress"), timeout=5, what="a lease")
    remote.drain()
    answers = await asyncio.gather(*waits)
    assert [a.status_code for a in answers] == [200] * 500
    leased = [item["job"]["id"] for a in answers for item in a.json()["leases"]]
    assert leased == [job_id]  # one waiter got it; nobody got it twice


async def test_lease_any_task_worker_makes_its_queue_take_any_task(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app)
    assert (
        await client.post("/jobs", json={"task": "whatever", "queue": "default"})
    ).status_code == 422
    answer = await client.post("/leases", json={"queues": ["default"], "worker": "any-1"})
    assert answer.status_code == 200
    created = await client.post("/jobs", json={"task": "whatever", "queue": "default"})
    assert created.status_code == 201, created.text
    leased = (await client.post("/leases", json={"queues": ["default"], "worker": "any-1"})).json()
    assert leased["leases"][0]["job"]["task"] == "whatever"
    row = await db.fetchrow("SELECT tasks FROM processes WHERE worker_id = 'anonymous/any-1'")
    assert row is not None
    assert list(row["tasks"]) == ["*"]


async def test_lease_batch_answers_match_their_documented_models(start_app: AppFactory) -> None:
    from jobqueue.api.routes._lease_schemas import LeasesOut, RenewalsOut, ReportsOut

    client = await remote_app(start_app)
    await enqueue(client, payload={"name": "é", "n": [1, 2.5, None]})
    await enqueue(client)
    leased = await lease(client, max_jobs=2)
    assert leased.headers["content-type"] == "application/json"
    model = LeasesOut.model_validate(leased.json())
    assert model.leases[0].job.payload == {"name": "é", "n": [1, 2.5, None]}
    assert leased.json()["leases"][0]["expires_at"].endswith("Z")
    tokens = [item.token for item in model.leases]
    beat = await client.post("/leases/heartbeat", json={"tokens": tokens})
    assert RenewalsOut.model_validate(beat.json()).leases[0].status == "extended"
    done = await client.post(
        "/leases/complete", json={"leases": [{"token": t, "result": 1} for t in tokens]}
    )
    reports = ReportsOut.model_validate(done.json())
    assert [r.status for r in reports.leases] == ["done", "done"]


def _forge(raw: str) -> str:
    import base64

    return "jl1." + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def test_lease_token_with_a_worker_id_the_service_never_writes_is_404(
    start_app: AppFactory,
) -> None:
    client = await remote_app(start_app)
    for raw in ("1.1.30000.anonymous/a\x00b", "1.1.30000.anonymous/", "1.1.30000.anonymous/a/b"):
        for path in ("/leases/heartbeat", f"/leases/{_forge(raw)}/complete"):
            body = {"tokens": [_forge(raw)]} if path.endswith("heartbeat") else {"result": 1}
            answer = await client.post(path, json=body)
            assert answer.status_code == 404, (raw, path, answer.text)


async def test_lease_forged_token_for_another_keys_job_tells_nothing_of_it(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app, api_keys=KEYS)
    job_id = await enqueue(client, queue="node")
    taken = await client.post(
        "/leases", json={"queues": ["node"], "worker": "n1"}, headers=bearer(OTHER_WORKER_KEY)
    )
    assert taken.json()["leases"][0]["job"]["id"] == job_id
    forged = _forge(f"{job_id}.1.30000.img/w1")
    answer = await client.post(
        f"/leases/{forged}/complete", json={"result": 1}, headers=bearer(WORKER_KEY)
    )
    assert answer.status_code == 409
    assert "in_progress" not in answer.json()["detail"]
    assert (await job_row(db, job_id))["status"] == "in_progress"


async def test_lease_fail_decides_retries_from_the_jobs_own_max_attempts(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app)
    job_id = await enqueue(client, max_attempts=1)
    token = (await lease(client)).json()["leases"][0]["token"]
    answer = await client.post(f"/leases/{token}/fail", json={"retry_delay_seconds": 0})
    assert answer.json()["status"] == "failed"
    row = await job_row(db, job_id)
    assert (row["status"], row["attempts"]) == ("failed", 1)


async def test_lease_bad_worker_name_is_a_422_naming_the_field(start_app: AppFactory) -> None:
    client = await remote_app(start_app)
    answer = await client.post("/leases", json={"queues": ["images"], "worker": "a/b"})
    assert answer.status_code == 422
    locations = [error["loc"] for error in answer.json()["detail"]]
    assert ["body", "worker", "constrained-str"] in locations
    not_object = await client.post("/leases", json=["queues"])
    assert not_object.json() == {"detail": "the request body must be a JSON object"}


async def test_lease_bodies_naming_a_key_twice_are_400(start_app: AppFactory) -> None:
    client = await remote_app(start_app)
    answer = await client.post(
        "/leases",
        content=b'{"queues": ["images"], "worker": "w1", "worker": "w2"}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert "worker" in answer.json()["detail"]


async def test_lease_carrying_reports_writes_them_then_leases_without_waiting(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    from jobqueue.api.routes._lease_schemas import LeasesOut

    client = await remote_app(start_app)
    done_id, failed_id, next_id = [await enqueue(client) for _ in range(3)]
    tokens = [item["token"] for item in (await lease(client, max_jobs=2)).json()["leases"]]
    started = time.monotonic()
    answer = await lease(
        client,
        max_jobs=5,
        wait_seconds=10,
        complete=[{"token": tokens[0], "result": {"ok": 1}}],
        fail=[{"token": tokens[1], "message": "boom", "retryable": False}],
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [item["job"]["id"] for item in body["leases"]] == [next_id]
    assert body["completed"] == [
        {"job_id": done_id, "status": "done", "repeated": False, "token": tokens[0]}
    ]
    assert body["failed"] == [
        {"job_id": failed_id, "status": "failed", "repeated": False, "token": tokens[1]}
    ]
    LeasesOut.model_validate(body)
    done, failed = await job_row(db, done_id), await job_row(db, failed_id)
    assert (done["status"], json.loads(done["result"])) == ("done", {"ok": 1})
    assert (failed["status"], failed["error"]) == ("failed", "Error: boom")
    # Nothing is due now: a call carrying a report answers at once instead of waiting 10 s.
    again = await lease(
        client, wait_seconds=10, complete=[{"token": tokens[0], "result": {"ok": 1}}]
    )
    assert time.monotonic() - started < 5
    assert again.json()["leases"] == []
    assert again.json()["completed"][0]["repeated"] is True


async def test_lease_carrying_a_bad_report_writes_and_leases_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await remote_app(start_app, max_result_bytes=100)
    first, second = await enqueue(client), await enqueue(client)
    token = (await lease(client)).json()["leases"][0]["token"]
    # A result over the limit: 422, the completion not written, the second job not leased.
    too_big = await lease(client, complete=[{"token": token, "result": "x" * 200}])
    assert too_big.status_code == 422
    assert "JOBQUEUE_MAX_RESULT_BYTES" in too_big.json()["detail"]
    # A fine completion beside a failure whose token is malformed: 404, neither written.
    bad_token = await lease(
        client, complete=[{"token": token, "result": 1}], fail=[{"token": "jl1.!!!"}]
    )
    assert bad_token.status_code == 404
    assert (await job_row(db, first))["status"] == "in_progress"
    assert (await job_row(db, second))["status"] == "todo"


async def test_lease_batch_naming_a_lease_twice_is_422_and_writes_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    # Both items answered "done" while the second result was dropped (fresh-user finding).
    client = await remote_app(start_app)
    job_id = await enqueue(client)
    token = (await lease(client)).json()["leases"][0]["token"]
    twice = await client.post(
        "/leases/complete",
        json={"leases": [{"token": token, "result": 1}, {"token": token, "result": 2}]},
    )
    assert twice.status_code == 422
    assert twice.json()["detail"] == (
        "leases[0] and leases[1] name the same lease: report each lease once"
    )
    carried = await lease(client, complete=[{"token": token, "result": 1}], fail=[{"token": token}])
    assert carried.status_code == 422
    assert carried.json()["detail"] == (
        "complete[0] and fail[0] name the same lease: report each lease once"
    )
    released = await client.post("/leases/release", json={"tokens": [token, token]})
    assert released.status_code == 422
    assert (await job_row(db, job_id))["status"] == "in_progress"


async def test_lease_empty_report_lists_carry_nothing(start_app: AppFactory) -> None:
    # docs/workers.md says the lists are optional: an empty one is the same as none.
    client = await remote_app(start_app)
    job_id = await enqueue(client)
    answer = await lease(client, complete=[], fail=[])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [item["job"]["id"] for item in body["leases"]] == [job_id]
    assert (body["completed"], body["failed"]) == ([], [])


async def test_lease_batch_naming_a_lease_twice_with_an_edited_token_is_422(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    # A worker may edit the lease length in its own token: another text, the same lease. Both
    # items answered "done" while the second result was dropped (fresh-user finding).
    import base64

    client = await remote_app(start_app)
    job_id = await enqueue(client)
    token = (await lease(client)).json()["leases"][0]["token"]
    body = token.removeprefix("jl1.")
    job, attempt, _lease_ms, worker = (
        base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split(".", 3)
    )
    edited = _forge(f"{job}.{attempt}.20000.{worker}")
    assert edited != token
    twice = await client.post(
        "/leases/complete",
        json={"leases": [{"token": token, "result": 1}, {"token": edited, "result": 2}]},
    )
    assert twice.status_code == 422
    assert twice.json()["detail"] == (
        "leases[0] and leases[1] name the same lease: report each lease once"
    )
    carried = await lease(client, complete=[{"token": token}], fail=[{"token": edited}])
    assert carried.json()["detail"] == (
        "complete[0] and fail[0] name the same lease: report each lease once"
    )
    assert (await job_row(db, job_id))["status"] == "in_progress"
