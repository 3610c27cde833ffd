"""Byte budgets of job reads against a real PostgreSQL: a page of ``GET /jobs`` holds at most
``JOBQUEUE_MAX_PAGE_BYTES`` of payload and result JSON (cut in the database, from the stored
``payload_bytes`` and ``result_bytes``), and a result over ``JOBQUEUE_MAX_RESULT_BYTES`` fails
its attempt and is never stored.

Run with ``-s`` to see the measured memory figures.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx

from jobqueue.tasks.registry import JobContext, TaskRegistry
from tests.conftest import AppFactory
from tests.helpers import PeakRss, one, wait_for_status

MIB = 1 << 20


def compact_size(value: Any) -> int:
    """The bytes of ``value`` as compact UTF-8 JSON (what the service stores and counts)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


PAYLOAD_1000 = {"s": "x" * 992}  # {"s":"…"}: 992 + 8 = 1000 bytes of JSON


async def create(client: httpx.AsyncClient, count: int, **spec: Any) -> list[int]:
    """Create ``count`` jobs with ``spec``; their ids, oldest first."""
    ids = []
    for _ in range(count):
        response = await client.post("/jobs", json=spec)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def pages(client: httpx.AsyncClient, limit: int = 1000) -> list[list[int]]:
    """Walk ``GET /jobs`` from the first page to the last; the ids of each page."""
    walked: list[list[int]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        walked.append([job["id"] for job in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return walked


def test_payload_1000_is_1000_bytes_of_json() -> None:
    assert compact_size(PAYLOAD_1000) == 1000


async def test_enqueue_payload_bytes_are_its_compact_utf8_json(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    payload = {"é": "ü€"}  # 14 bytes: é and ü are 2 bytes each, € is 3
    (one,) = await create(client, 1, payload=payload)
    batch = await client.post("/jobs/batch", json={"jobs": [{"payload": payload}]})
    (other,) = batch.json()["ids"]
    rows = await db.fetch(
        "SELECT id, payload_bytes, result_bytes FROM jobs WHERE id = ANY($1) ORDER BY id",
        [one, other],
    )
    assert [tuple(row) for row in rows] == [(one, 14, 0), (other, 14, 0)]


async def test_list_jobs_byte_budget_cuts_pages_and_cursor_continues_after_last_job(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False, max_page_bytes=3500)
    ids = await create(client, 10, payload=PAYLOAD_1000)
    newest = ids[::-1]
    # 3 jobs are 3000 bytes; a 4th would make 4000, over 3500: 3 per page, whatever the limit.
    assert await pages(client) == [newest[0:3], newest[3:6], newest[6:9], newest[9:]]


async def test_list_jobs_job_larger_than_budget_is_listed_alone(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, max_page_bytes=500)
    ids = await create(client, 3, payload=PAYLOAD_1000)
    assert await pages(client) == [[ids[2]], [ids[1]], [ids[0]]]


async def test_list_jobs_limit_ends_page_before_budget(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, max_page_bytes=3500)
    ids = await create(client, 5, payload={})
    assert await pages(client, limit=2) == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]


async def test_list_jobs_result_bytes_count_toward_budget(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    # echo returns {"echo": payload}: 8 + 1000 + 1 = 1009 bytes; a job is 2009 bytes.
    client = await start_app(max_page_bytes=2 * 2009)
    ids = await create(client, 3, task="echo", payload=PAYLOAD_1000)
    for job_id in ids:
        await wait_for_status(client, job_id, {"done"})
    sizes = await db.fetch("SELECT payload_bytes, result_bytes FROM jobs ORDER BY id")
    assert [tuple(row) for row in sizes] == [(1000, 1009)] * 3
    assert compact_size({"echo": PAYLOAD_1000}) == 1009
    assert await pages(client) == [[ids[2], ids[1]], [ids[0]]]


async def test_list_jobs_budget_pages_skip_and_repeat_nothing_under_inserts(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False, max_page_bytes=2500)
    ids = await create(client, 6, payload=PAYLOAD_1000)
    first = (await client.get("/jobs", params={"limit": 1000})).json()
    await create(client, 4, payload=PAYLOAD_1000)  # newer: they belong before the cursor
    seen = [job["id"] for job in first["items"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = (await client.get("/jobs", params={"limit": 1000, "cursor": cursor})).json()
        seen.extend(job["id"] for job in page["items"])
        cursor = page["next_cursor"]
    assert [job["id"] for job in first["items"]] == [ids[5], ids[4]]
    assert seen == ids[::-1]


async def test_list_jobs_limit_1000_of_300_one_mib_jobs_reads_one_budget_of_them(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    """The tester's case: 300 jobs of 1 MiB payloads, three ``GET /jobs?limit=1000`` at once.
    Before the budget: a 374,692,004-byte answer each and the process 1.06 GB larger at its
    peak (1.94 GB for three). Now: 7 jobs (7.3 MB) an answer, read from the database alone."""
    client = await start_app(workers_enabled=False)
    # Inserted in SQL (no 300 MiB of request bodies through this process before it is
    # measured), with the sizes the migration's backfill computes; the text compresses well,
    # so the table stays small on disk. {"data": "<1 MiB>"}: 1,048,576 + 12 bytes as text.
    await db.execute(
        "INSERT INTO jobs (task, payload, payload_bytes)"
        " SELECT 'echo', p, octet_length(p::text)"
        " FROM (SELECT jsonb_build_object('data', repeat(md5(i::text), 32768)) AS p"
        "       FROM generate_series(1, 300) AS i) AS s"
    )
    assert await db.fetchval("SELECT DISTINCT payload_bytes FROM jobs") == MIB + 12
    await client.get("/jobs", params={"limit": 1})  # warm-up: imports, statement caches
    with PeakRss() as rss:
        responses = await asyncio.gather(
            *(client.get("/jobs", params={"limit": 1000}) for _ in range(3))
        )
    sizes = [len(response.content) for response in responses]
    print(
        f"\n3 x GET /jobs?limit=1000 over 300 jobs of 1 MiB: answers {sizes} bytes; "
        f"RSS {rss.base / MIB:.0f} MiB before, peak {rss.peak / MIB:.0f} MiB, "
        f"growth {rss.growth / MIB:.1f} MiB"
    )
    # 7 x 1,048,588 = 7,340,116 <= 8 MiB; an 8th would pass it.
    for response in responses:
        page = response.json()
        assert len(page["items"]) == 7
        assert page["next_cursor"] is not None
    assert all(7 * (MIB + 12) < size < 8 * MIB for size in sizes)
    assert rss.growth < 150 * MIB


async def test_result_over_limit_fails_attempt_and_stores_nothing(
    start_app: AppFactory, registry: TaskRegistry, db: asyncpg.Connection
) -> None:
    async def big(ctx: JobContext) -> dict[str, str]:
        return {"data": "x" * int(ctx.payload["n"])}

    registry.register("big", big)
    client = await start_app(max_result_bytes=1000)
    (job_id,) = await create(client, 1, task="big", payload={"n": 2000}, max_attempts=1)
    job = await wait_for_status(client, job_id, {"failed"})
    message = (
        "the task's result is 2011 bytes of JSON; the limit is 1000 bytes "
        "(JOBQUEUE_MAX_RESULT_BYTES)"
    )
    assert (job["result"], job["error"]) == (None, f"ResultTooLarge: {message}")
    row = await one(db, "SELECT result, result_bytes FROM jobs WHERE id = $1", job_id)
    assert tuple(row) == (None, 0)
    (attempt,) = (await client.get(f"/jobs/{job_id}/attempts")).json()["items"]
    assert (attempt["outcome"], attempt["error_type"], attempt["error_message"]) == (
        "failed",
        "ResultTooLarge",
        message,
    )


async def test_result_at_limit_is_stored_with_its_size(
    start_app: AppFactory, registry: TaskRegistry, db: asyncpg.Connection
) -> None:
    async def big(ctx: JobContext) -> dict[str, str]:
        return {"data": "x" * int(ctx.payload["n"])}

    registry.register("big", big)
    client = await start_app(max_result_bytes=1000)
    (job_id,) = await create(client, 1, task="big", payload={"n": 989}, max_attempts=1)
    job = await wait_for_status(client, job_id, {"done"})
    assert job["result"] == {"data": "x" * 989}
    assert await db.fetchval("SELECT result_bytes FROM jobs WHERE id = $1", job_id) == 1000


async def test_result_of_60_mb_with_default_limit_is_refused_not_served(
    start_app: AppFactory, registry: TaskRegistry
) -> None:
    """The tester's case: a task returning 60 MB was stored and served whole by
    ``/jobs/{id}``, the list and the dashboard."""

    async def huge(ctx: JobContext) -> str:
        return "x" * 60_000_000

    registry.register("huge", huge)
    client = await start_app()
    (job_id,) = await create(client, 1, task="huge", max_attempts=1)
    await wait_for_status(client, job_id, {"failed"})
    response = await client.get(f"/jobs/{job_id}")
    assert response.json()["error"] == (
        "ResultTooLarge: the task's result is 60000002 bytes of JSON; the limit is 1048576 bytes "
        "(JOBQUEUE_MAX_RESULT_BYTES)"
    )
    assert response.json()["result"] is None
    assert len(response.content) < 2000


async def test_result_nested_300_levels_fails_attempt_and_job_stays_readable(
    start_app: AppFactory, registry: TaskRegistry, db: asyncpg.Connection
) -> None:
    """The tester's case: a result nested 255 levels or more was stored, and every read of its
    job (``GET /jobs/{id}``, each list page holding it, the CLI) answered 500: the response
    serializer refuses to go that deep."""

    async def deep(ctx: JobContext) -> list[object]:
        value: list[object] = []
        for _ in range(int(ctx.payload["n"]) - 1):
            value = [value]
        return value

    registry.register("deep", deep)
    client = await start_app()
    (job_id,) = await create(client, 1, task="deep", payload={"n": 300}, max_attempts=1)
    job = await wait_for_status(client, job_id, {"failed"})
    assert (job["result"], job["error"]) == (
        None,
        "ResultTooDeep: the task's result nests more than 64 levels of objects and arrays "
        "(JOBQUEUE_MAX_PAYLOAD_DEPTH bounds results too): flatten it",
    )
    assert await db.fetchval("SELECT result FROM jobs WHERE id = $1", job_id) is None
    listing = await client.get("/jobs")
    assert listing.status_code == 200
    assert [item["id"] for item in listing.json()["items"]] == [job_id]
