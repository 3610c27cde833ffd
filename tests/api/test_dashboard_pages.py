"""The web dashboard (/ui) against a real PostgreSQL: pages, the overview JSON, filters, 404s."""

from __future__ import annotations

import html
import json
import re

import asyncpg
import httpx

from jobqueue.tasks.registry import TaskRegistry
from tests.conftest import AppFactory
from tests.helpers import wait_for_status
from tests.ui.support import announce_finished, set_status

STATUSES = ["todo", "in_progress", "done", "failed", "cancelled"]


async def create(client: httpx.AsyncClient, count: int = 1, **spec: object) -> list[int]:
    """Create ``count`` jobs with ``spec`` over the API; their ids."""
    ids = []
    for _ in range(count):
        response = await client.post("/jobs", json=spec)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def job_ids(page: str) -> list[int]:
    """The job ids listed on a /ui/jobs page, in order."""
    return [int(n) for n in re.findall(r'data-job-id="(\d+)"', page)]


def next_link(page: str) -> str | None:
    """The href of the page's "Older" link, unescaped."""
    match = re.search(r'rel="next" href="([^"]+)"', page)
    return None if match is None else html.unescape(match.group(1))


async def seed_counts(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    """default: 2 todo, 1 in_progress, 2 done, 1 failed (plus 1 done two hours ago, outside
    the last hour); emails: 2 todo, 1 cancelled. The throughput chart comes from the live
    processes' registry rows: one says it ended 2 done and 1 failed this minute, another 5 done
    two hours ago (outside the hour)."""
    default = await create(client, 7)
    emails = await create(client, 3, queue="emails")
    await set_status(db, default[:2], "done")
    await set_status(db, default[2:3], "failed")
    await set_status(db, default[3:4], "in_progress")
    await set_status(db, default[6:7], "done")
    await db.execute(
        "UPDATE jobs SET finished_at = now() - interval '2 hours' WHERE id = $1", default[6]
    )
    await set_status(db, emails[:1], "cancelled")
    await announce_finished(db, done=2, failed=1)
    await announce_finished(db, done=5, failed=0, minutes_ago=120)


async def test_overview_json_counts_jobs_per_queue_and_status(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    await seed_counts(client, db)
    response = await client.get("/ui/api/overview")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert data["statuses"] == STATUSES
    assert data["queues"] == [
        {
            "queue": "default",
            "counts": {"todo": 2, "in_progress": 1, "done": 3, "failed": 1, "cancelled": 0},
            "total": 7,
        },
        {
            "queue": "emails",
            "counts": {"todo": 2, "in_progress": 0, "done": 0, "failed": 0, "cancelled": 1},
            "total": 3,
        },
    ]
    assert data["totals"] == {"todo": 4, "in_progress": 1, "done": 3, "failed": 1, "cancelled": 1}
    assert data["total"] == 10
    assert (data["done_last_hour"], data["failed_last_hour"]) == (2, 1)
    assert data["failure_rate"] == 1 / 3
    assert data["workers"] is None


async def test_overview_json_throughput_is_61_minutes_oldest_first(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    await seed_counts(client, db)
    throughput = (await client.get("/ui/api/overview")).json()["throughput"]
    assert len(throughput) == 61
    minutes = [m["minute"] for m in throughput]
    assert minutes == sorted(minutes)
    assert sum(m["done"] for m in throughput) == 2
    assert sum(m["failed"] for m in throughput) == 1
    # All three finished a moment ago: in the current minute or, across a boundary, the one before.
    assert sum(m["done"] + m["failed"] for m in throughput[-2:]) == 3


async def test_overview_json_empty_database_has_no_rate(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    data = (await client.get("/ui/api/overview")).json()
    assert (data["queues"], data["total"], data["failure_rate"]) == ([], 0, None)
    assert data["totals"] == dict.fromkeys(STATUSES, 0)


async def test_overview_json_reports_busy_workers_of_the_pool(client: httpx.AsyncClient) -> None:
    data = (await client.get("/ui/api/overview")).json()
    assert data["workers"] == {"busy": 0, "total": 10}


async def test_overview_page_renders_counts_table(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    await seed_counts(client, db)
    response = await client.get("/ui")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    assert "Jobs per queue and status" in page
    assert re.search(r'data-queue="default" data-status="done"[^>]*><a [^>]*>3</a>', page)
    assert re.search(r'data-queue="emails" data-status="cancelled"[^>]*><a [^>]*>1</a>', page)
    assert re.search(r'data-queue="\*" data-status="total"[^>]*>10<', page)
    assert 'id="overview-data"' in page
    assert "/ui/static/overview.js" in page


async def test_static_files_are_served_from_the_package(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    for name, kind in [
        ("dashboard.css", "text/css"),
        ("charts.js", "javascript"),
        ("overview.js", "javascript"),
        ("job.js", "javascript"),
        ("favicon.svg", "image/svg+xml"),
    ]:
        response = await client.get(f"/ui/static/{name}")
        assert response.status_code == 200, name
        assert kind in response.headers["content-type"], name


async def test_jobs_page_lists_newest_first_with_links(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    ids = await create(client, 3, description="hello")
    page = (await client.get("/ui/jobs")).text
    assert job_ids(page) == ids[::-1]
    assert f'href="/ui/jobs/{ids[0]}"' in page
    assert next_link(page) is None


async def test_jobs_page_filters_by_status_queue_and_task(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    echo_default = await create(client, 2)
    sleep_default = await create(client, 1, task="sleep")
    echo_emails = await create(client, 2, queue="emails")
    await set_status(db, [echo_default[0], echo_emails[1]], "failed")
    assert job_ids((await client.get("/ui/jobs?status=failed")).text) == [
        echo_emails[1],
        echo_default[0],
    ]
    assert job_ids((await client.get("/ui/jobs?queue=emails")).text) == echo_emails[::-1]
    assert job_ids((await client.get("/ui/jobs?task=sleep")).text) == sleep_default
    page = (await client.get("/ui/jobs?status=failed&queue=default&task=echo")).text
    assert job_ids(page) == [echo_default[0]]
    assert job_ids((await client.get("/ui/jobs?status=&queue=&task=&q=")).text) == [
        *echo_emails[::-1],
        *sleep_default,
        *echo_default[::-1],
    ]


async def test_jobs_page_description_filter_escapes_wildcards(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    descriptions = ["100% sure", "1000 items", "snake_case", "snakeXcase", r"back\slash", "SURE?"]
    ids = {d: (await create(client, description=d))[0] for d in descriptions}

    async def found(text: str) -> set[int]:
        page = (await client.get("/ui/jobs", params={"q": text})).text
        return set(job_ids(page))

    assert await found("100%") == {ids["100% sure"]}
    assert await found("e_c") == {ids["snake_case"]}
    assert await found("\\") == {ids[r"back\slash"]}
    assert await found("%") == {ids["100% sure"]}
    assert await found("sure") == {ids["100% sure"], ids["SURE?"]}  # case-insensitive
    assert await found("nothing like it") == set()


async def test_jobs_page_next_link_keeps_filters(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    batch = [{"description": f"report {i}", "queue": "reports"} for i in range(55)]
    response = await client.post("/jobs/batch", json={"jobs": [*batch, {"description": "other"}]})
    ids = response.json()["ids"][:55]
    first = (await client.get("/ui/jobs", params={"queue": "reports", "q": "report"})).text
    assert job_ids(first) == ids[::-1][:50]
    link = next_link(first)
    assert link is not None
    assert "queue=reports" in link
    assert "q=report" in link
    assert "cursor=" in link
    second = (await client.get(link)).text
    assert job_ids(second) == ids[::-1][50:]
    assert next_link(second) is None
    assert 'href="/ui/jobs?queue=reports&amp;q=report"' in second  # back to the newest


async def test_jobs_page_bad_status_is_422_page(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    response = await client.get("/ui/jobs?status=nope")
    assert response.status_code == 422
    assert "text/html" in response.headers["content-type"]
    assert "status &#39;nope&#39; is not one of" in response.text


async def test_jobs_page_bad_cursor_is_400_page(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    response = await client.get("/ui/jobs?cursor=bogus")
    assert response.status_code == 400
    assert "cursor is not valid" in response.text


async def test_pages_escape_job_text(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    evil = "<script>alert(1)</script>"
    (job_id,) = await create(client, description=evil, payload={"html": evil})
    for path in ("/ui/jobs", f"/ui/jobs/{job_id}"):
        page = (await client.get(path)).text
        assert evil not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path


async def test_job_page_shows_payload_attempts_error_and_timeline(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/jobs",
        json={"task": "fail", "payload": {"message": "kaput"}, "max_attempts": 2, "priority": 7},
    )
    job_id = response.json()["id"]
    await wait_for_status(client, job_id, {"failed"})
    page = (await client.get(f"/ui/jobs/{job_id}")).text
    assert f"Job #{job_id}" in page
    assert "&#34;message&#34;: &#34;kaput&#34;" in page  # the payload, pretty-printed
    assert "RuntimeError: kaput" in page  # the job's error
    assert page.count('class="badge outcome-') == 2  # two attempts
    assert "outcome-retried" in page
    assert "outcome-failed" in page
    assert "Traceback" in page
    for label in ("created", "attempt 1 started", "attempt 1 retried", "attempt 2 failed"):
        assert f'<span class="event-label">{label}</span>' in page
    assert '<span class="event-label">finished: failed</span>' in page
    assert re.search(r'data-action="retry"\s+data-confirm="[^"]*">', page)  # enabled
    assert re.search(r'data-action="cancel"\s+data-confirm="[^"]*" disabled>', page)


async def test_job_page_of_done_job_shows_result(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"payload": {"n": 42}, "description": "answer"})
    job_id = response.json()["id"]
    await wait_for_status(client, job_id, {"done"})
    page = (await client.get(f"/ui/jobs/{job_id}")).text
    assert 'id="job-result"' in page
    assert "&#34;n&#34;: 42" in page
    assert '<span class="event-label">attempt 1 done</span>' in page


def pre_text(page: str, element_id: str) -> str:
    """The text of the page's ``<pre id=element_id>``, unescaped."""
    match = re.search(rf'<pre class="code" id="{element_id}" tabindex="0">(.*?)</pre>', page, re.S)
    assert match is not None, element_id
    return html.unescape(match.group(1))


def pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


async def test_job_page_payload_over_64_kib_is_cut_with_link_to_the_whole(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False)
    payload = {"s": "é" * 500_000}  # 1,000,008 bytes of JSON
    (job_id,) = await create(client, payload=payload)
    page = (await client.get(f"/ui/jobs/{job_id}")).text
    # 65,536 bytes of the pretty JSON, cut on a character boundary (é is 2 bytes).
    head = '{\n  "s": "'
    assert pretty(payload).startswith(head)
    assert pre_text(page, "job-payload") == head + "é" * ((65_536 - len(head)) // 2) + "…"
    assert len(page.encode()) < 80_000
    link = f'<a href="/ui/jobs/{job_id}/payload">the whole payload as JSON</a>'
    assert f"Only the first 64 KiB are shown: {link}." in page
    whole = await client.get(f"/ui/jobs/{job_id}/payload")
    assert (whole.status_code, whole.headers["content-type"]) == (200, "application/json")
    assert whole.content == compact(payload)


async def test_job_page_payload_under_64_kib_is_whole_without_note(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False)
    payload = {"s": "x" * 60_000}
    (job_id,) = await create(client, payload=payload)
    page = (await client.get(f"/ui/jobs/{job_id}")).text
    assert pre_text(page, "job-payload") == pretty(payload)
    assert "job-payload-cut" not in page


async def test_job_page_result_over_64_kib_is_cut_with_link_to_the_whole(
    client: httpx.AsyncClient,
) -> None:
    payload = {"s": "y" * 100_000}
    (job_id,) = await create(client, payload=payload)  # echo: {"echo": payload}
    await wait_for_status(client, job_id, {"done"})
    page = (await client.get(f"/ui/jobs/{job_id}")).text
    assert pre_text(page, "job-result") == pretty({"echo": payload})[:65_536] + "…"
    link = f'<a href="/ui/jobs/{job_id}/result">the whole result as JSON</a>'
    assert f"Only the first 64 KiB are shown: {link}." in page
    whole = await client.get(f"/ui/jobs/{job_id}/result")
    assert whole.content == compact({"echo": payload})


async def test_job_payload_json_keeps_numbers_above_2_pow_53(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    (job_id,) = await create(client, payload={"n": 9007199254740993, "f": 0.1})
    whole = await client.get(f"/ui/jobs/{job_id}/payload")
    assert whole.content == b'{"f":0.1,"n":9007199254740993}'  # jsonb's key order
    assert (await client.get(f"/ui/jobs/{job_id}/result")).content == b"null"


async def test_job_payload_json_of_absent_job_is_404(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.get("/ui/jobs/77/payload")
    assert (response.status_code, response.json()["detail"]) == (404, "job 77 does not exist")


async def test_jobs_page_of_one_mib_payloads_holds_none_of_them(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    await db.execute(
        "INSERT INTO jobs (task, payload, payload_bytes)"
        " SELECT 'echo', p, octet_length(p::text)"
        " FROM (SELECT jsonb_build_object('data', repeat('z', 1048576)) AS p"
        "       FROM generate_series(1, 50)) AS s"
    )
    page = (await client.get("/ui/jobs")).text
    assert len(job_ids(page)) == 50
    assert "zzzz" not in page
    assert len(page.encode()) < 64_000


async def test_job_page_absent_job_is_404_page(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    response = await client.get("/ui/jobs/424242")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "Not found" in response.text
    assert "job 424242 does not exist" in response.text


async def test_job_page_malformed_id_is_404_page(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, remote_queues="emails,reports")
    for bad in ("abc", "0", "-1", "99999999999999999999"):
        response = await client.get(f"/ui/jobs/{bad}")
        assert response.status_code == 404, bad
        assert "Not found" in response.text


async def test_job_page_non_ascii_digits_in_id_is_404(client: httpx.AsyncClient) -> None:
    for job_id in ("²", "١٢", "\uff11"):  # superscript two, Arabic-Indic, fullwidth one
        response = await client.get(f"/ui/jobs/{job_id}")
        assert response.status_code == 404, job_id
        assert f"no job {job_id!r}" in html.unescape(response.text)


async def test_overview_lists_50_largest_queues_and_sums_the_rest(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    # 60 queues in the table (written before queue names were checked): queue i has i+1 jobs.
    await db.execute(
        "INSERT INTO jobs (task, queue) SELECT 'echo', 'q' || lpad(i::text, 2, '0')"
        " FROM generate_series(0, 59) AS i, generate_series(0, 59) AS j WHERE j <= i"
    )
    client = await start_app(workers_enabled=False)
    data = (await client.get("/ui/api/overview")).json()
    assert [q["queue"] for q in data["queues"]] == [f"q{i:02}" for i in range(10, 60)]
    assert data["other_queues"] == 10
    assert data["other_counts"] == {
        "todo": sum(range(1, 11)), "in_progress": 0, "done": 0, "failed": 0, "cancelled": 0
    }  # fmt: skip
    assert data["totals"]["todo"] == sum(range(1, 61))
    page = (await client.get("/ui")).text
    assert page.count('data-status="total" data-label="total">') == 50 + 1 + 1
    assert "10 more queues" in page


async def test_jobs_page_task_suggestions_are_bounded(
    start_app: AppFactory, registry: TaskRegistry
) -> None:
    async def noop(_ctx: object) -> None:
        return None

    for i in range(80):
        registry.register(f"extra_{i:02}", noop)
    client = await start_app(workers_enabled=False)
    page = (await client.get("/ui/jobs")).text
    datalist = page[page.index('<datalist id="known-tasks">') : page.index("</datalist>")]
    assert datalist.count("<option") == 50
