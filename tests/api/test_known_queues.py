"""Known queues: a job may only name a queue the deployment runs (``JOBQUEUE_QUEUES`` and
``JOBQUEUE_REMOTE_QUEUES``), so a client cannot grow the dashboard and the metrics by inventing
queue names. Every refusal is a 422 that lists the known queues, and creates nothing."""

from __future__ import annotations

import asyncpg

from jobqueue.errors import UnknownQueue
from tests.conftest import AppFactory

KNOWN = "known queues: default, emails, reports (JOBQUEUE_QUEUES, JOBQUEUE_REMOTE_QUEUES)"


async def test_create_job_unknown_queue_is_422_listing_known_queues(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(queues="default,emails", remote_queues="reports")
    response = await client.post("/jobs", json={"queue": "invented-1"})
    assert response.status_code == 422
    assert response.json() == {"detail": f"unknown queue 'invented-1'; {KNOWN}"}
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_remote_queue_is_201_and_not_run_here(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(queues="default", remote_queues="reports")
    response = await client.post("/jobs", json={"queue": "reports"})
    assert response.status_code == 201, response.text
    waited = await client.get(f"/jobs/{response.json()['id']}", params={"wait_seconds": "0.3"})
    assert (waited.json()["queue"], waited.json()["status"]) == ("reports", "todo")


async def test_create_job_api_only_process_refuses_unknown_queue(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False, queues="default,emails")
    response = await client.post("/jobs", json={"queue": "invented"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("unknown queue 'invented'; known queues: ")
    assert (await client.post("/jobs", json={"queue": "emails"})).status_code == 201
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


async def test_batch_unknown_queue_is_422_naming_index(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(queues="default,emails", remote_queues="reports")
    specs = [{"queue": "emails"}, {"queue": "reports"}, {"queue": "invented"}]
    response = await client.post("/jobs/batch", json={"jobs": specs})
    assert response.status_code == 422
    assert response.json() == {"detail": f"jobs[2]: unknown queue 'invented'; {KNOWN}"}
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_list_jobs_unknown_queue_is_an_empty_page(start_app: AppFactory) -> None:
    client = await start_app()
    assert (await client.post("/jobs", json={})).status_code == 201
    response = await client.get("/jobs", params={"queue": "never-configured"})
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_create_job_many_unknown_queues_leave_metrics_unchanged(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app()
    statuses = {
        (await client.post("/jobs", json={"queue": f"q-{i}"})).status_code for i in range(200)
    }
    exposition = client.runtime.service.metrics.exposition().decode()
    assert statuses == {422}
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
    assert 'queue="q-' not in exposition
    assert "jobqueue_jobs_enqueued_total{" not in exposition
    assert (
        'jobqueue_http_requests_total{method="POST",route="/jobs",status="422"} 200.0' in exposition
    )


def test_unknown_queue_message_lists_at_most_twenty_names() -> None:
    known = [f"q{i:03}" for i in range(1000)]
    message = str(UnknownQueue("x", known))
    assert message == (
        "unknown queue 'x'; known queues: "
        + ", ".join(f"q{i:03}" for i in range(20))
        + " and 980 more (JOBQUEUE_QUEUES, JOBQUEUE_REMOTE_QUEUES)"
    )


async def test_api_only_process_accepts_a_remote_task_it_does_not_import(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False, remote_tasks="reports.build, other")
    created = await client.post("/jobs", json={"task": "reports.build", "payload": {"n": 1}})
    assert created.status_code == 201, created.text
    assert await db.fetchval("SELECT task FROM jobs") == "reports.build"
    unknown = await client.post("/jobs", json={"task": "nope"})
    assert unknown.status_code == 422
    assert "other" in unknown.json()["detail"]
    assert "reports.build" in unknown.json()["detail"]
