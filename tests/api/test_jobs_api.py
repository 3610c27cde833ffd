"""The /jobs contract: shapes, defaults, errors, pagination."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest

from tests.conftest import AppFactory
from tests.helpers import wait_for_status

JOB_FIELDS = {
    "id", "task", "queue", "status", "payload", "result", "error", "attempts", "max_attempts",
    "priority", "description", "created_at", "started_at", "finished_at", "run_at",
}  # fmt: skip


async def test_create_job_original_body_reaches_done_with_result(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"description": "Process this task"})
    assert response.status_code == 201
    job = response.json()
    assert set(job) >= JOB_FIELDS
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert (job["task"], job["queue"], job["status"], job["payload"]) == (
        "echo",
        "default",
        "todo",
        {},
    )
    assert job["description"] == "Process this task"
    assert job["attempts"] == 0
    assert job["max_attempts"] == 3
    done = await wait_for_status(client, job["id"], {"done"})
    assert done["result"] == {"echo": {}}
    assert done["attempts"] == 1
    assert done["error"] is None
    assert done["started_at"] is not None
    assert done["finished_at"] >= done["started_at"]


async def test_create_job_fail_task_ends_failed_with_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", json={"task": "fail", "payload": {"message": "boom"}, "max_attempts": 1}
    )
    job = await wait_for_status(client, response.json()["id"], {"failed"})
    assert job["error"].startswith("RuntimeError: boom")
    assert job["attempts"] == 1
    assert job["result"] is None


async def test_create_job_fail_with_attempts_left_retries_then_fails(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/jobs", json={"task": "fail", "max_attempts": 3})
    job = await wait_for_status(client, response.json()["id"], {"failed"})
    assert job["attempts"] == 3
    assert job["error"].startswith("RuntimeError: failed on purpose")


async def test_get_job_absent_is_404_with_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/424242")
    assert response.status_code == 404
    assert response.json() == {"detail": "job 424242 does not exist"}


@pytest.mark.parametrize("job_id", ["0", "99999999999999999999"])
async def test_get_job_id_zero_or_past_bigint_is_422(
    client: httpx.AsyncClient, job_id: str
) -> None:
    response = await client.get(f"/jobs/{job_id}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "job_id"]


@pytest.mark.parametrize("job_id", ["abc", "1.5", "-3"])
async def test_get_job_id_not_a_number_is_404(client: httpx.AsyncClient, job_id: str) -> None:
    # /jobs/{job_id} matches digits only, so that /jobs/batch is never read as an id.
    response = await client.get(f"/jobs/{job_id}")
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


async def test_get_jobs_batch_is_405_allowing_post(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/batch")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


BAD_BODIES = [
    pytest.param(b"{bad", "application/json", 400, "not valid JSON", id="malformed-json"),
    pytest.param(b"[1, 2]", "application/json", 422, "JSON object", id="array-body"),
    pytest.param(b'{"payload": [1]}', "application/json", 422, "payload", id="payload-array"),
    pytest.param(b'{"payload": "x"}', "application/json", 422, "payload", id="payload-string"),
    pytest.param(b'{"priority": "high"}', "application/json", 422, "priority", id="wrong-type"),
    pytest.param(b'{"priority": 101}', "application/json", 422, "priority", id="priority-range"),
    pytest.param(b'{"task": "nope"}', "application/json", 422, "known tasks: ", id="unknown-task"),
    pytest.param(
        b'{"payload": {"a": "x\\u0000y"}}', "application/json", 422, "U+0000", id="nul-payload"
    ),
    pytest.param(
        b'{"payload": {"a\\u0000": 1}}', "application/json", 422, "U+0000", id="nul-payload-key"
    ),
    pytest.param(
        b'{"description": "a\\u0000"}', "application/json", 422, "U+0000", id="nul-description"
    ),
    pytest.param(b'{"payload": {"x": NaN}}', "application/json", 422, "NaN", id="nan"),
    pytest.param(b'{"surprise": 1}', "application/json", 422, "surprise", id="unknown-field"),
    pytest.param(b'{"queue": ""}', "application/json", 422, "queue", id="empty-queue"),
    pytest.param(b'{"max_attempts": 0}', "application/json", 422, "max_attempts", id="attempts"),
    pytest.param(b"task=echo", "application/x-www-form-urlencoded", 415, "application/json",
                 id="form-body"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_BODIES)
async def test_create_job_bad_input_is_4xx_and_creates_nothing(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    body: bytes,
    content_type: str,
    status: int,
    message: str,
) -> None:
    response = await client.post("/jobs", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert message in response.text
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_unknown_task_lists_known_tasks(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"task": "nope"})
    assert response.json() == {
        "detail": "unknown task 'nope'; known tasks: block, count, count_sync, discard, echo,"
        " fail, fails_first_run, flaky, retry_later, sleep, sleep_sync"
    }


async def test_create_job_payload_over_limit_is_413(
    start_app: object, db: asyncpg.Connection
) -> None:
    client = await start_app(max_payload_bytes=100)  # type: ignore[operator]
    ok = await client.post("/jobs", json={"payload": {"a": "x" * 80}})
    assert ok.status_code == 201
    response = await client.post("/jobs", json={"payload": {"a": "x" * 100}})
    assert response.status_code == 413
    assert "limit is 100 bytes" in response.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


async def test_list_jobs_newest_first_with_filters(start_app: AppFactory) -> None:
    client = await start_app(remote_queues="a,b")
    ids = []
    for task, queue in [("echo", "a"), ("sleep", "b"), ("echo", "b")]:
        payload = {"seconds": 0} if task == "sleep" else {}
        response = await client.post(
            "/jobs", json={"task": task, "queue": queue, "payload": payload}
        )
        ids.append(response.json()["id"])
    everything = (await client.get("/jobs")).json()
    assert [job["id"] for job in everything["items"]] == ids[::-1]
    assert everything["next_cursor"] is None
    by_queue = (await client.get("/jobs", params={"queue": "b"})).json()
    assert [job["id"] for job in by_queue["items"]] == [ids[2], ids[1]]
    by_task = (await client.get("/jobs", params={"task": "echo", "queue": "b"})).json()
    assert [job["id"] for job in by_task["items"]] == [ids[2]]
    by_status = (await client.get("/jobs", params={"status": "todo"})).json()
    assert {job["id"] for job in by_status["items"]} == set(ids)  # queues a, b are not served


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": 0}, 422),
        ({"limit": 1001}, 422),
        ({"status": "nope"}, 422),
        ({"cursor": "garbage!"}, 400),
        ({"cursor": "aWQ6eA"}, 400),  # "id:x"
    ],
)
async def test_list_jobs_bad_query_is_4xx(
    client: httpx.AsyncClient, params: dict[str, str | int], status: int
) -> None:
    response = await client.get("/jobs", params=params)
    assert response.status_code == status, response.text


async def test_list_jobs_pagination_2500_jobs_no_row_missed_or_repeated(
    start_app: object, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)  # type: ignore[operator]
    await db.execute(
        "INSERT INTO jobs (task, queue) SELECT 'echo', 'default' FROM generate_series(1, 2500)"
    )
    expected = [row["id"] for row in await db.fetch("SELECT id FROM jobs ORDER BY id DESC")]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 300}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/jobs", params=params)).json()
        seen.extend(job["id"] for job in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert len(seen) == 2500
    assert pages == 9


async def test_openapi_documents_examples_and_docs_page(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for name in ("JobCreate", "JobOut", "JobPage", "ErrorOut", "Health"):
        assert schema["components"]["schemas"][name].get("examples"), name
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_create_job_deeply_nested_payload_is_4xx(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = b'{"payload": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = await client.post(
        "/jobs", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_200_concurrent_requests_all_stored_once(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    responses = await asyncio.gather(
        *(client.post("/jobs", json={"payload": {"i": i}}) for i in range(200))
    )
    assert [r.status_code for r in responses] == [201] * 200
    by_payload = {r.json()["payload"]["i"]: r.json()["id"] for r in responses}
    rows = await db.fetch("SELECT id, payload FROM jobs")
    assert len(rows) == 200
    assert {json.loads(row["payload"])["i"]: row["id"] for row in rows} == by_payload
