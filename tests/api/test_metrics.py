"""/metrics after a known set of jobs: exact counter, histogram and gauge values."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobqueue.db import dashboard_queries
from jobqueue.db.engine import create_engine
from jobqueue.maintenance import Rescuer
from jobqueue.metrics import Metrics
from tests.conftest import AppFactory
from tests.helpers import wait_for_status


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_after_known_jobs_equal_expected_values(start_app: AppFactory) -> None:
    client = await start_app(remote_queues="other")
    ids = [(await client.post("/jobs", json={"task": "echo"})).json()["id"] for _ in range(3)]
    failing = (await client.post("/jobs", json={"task": "fail", "max_attempts": 2})).json()["id"]
    unserved = (await client.post("/jobs", json={"queue": "other"})).json()["id"]
    waiting = (await client.post("/jobs", json={"queue": "other"})).json()["id"]
    assert (await client.post(f"/jobs/{unserved}/cancel")).status_code == 200
    for job_id in ids:
        await wait_for_status(client, job_id, {"done"})
    await wait_for_status(client, failing, {"failed"})

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    s = _samples(response.text)
    enqueued = "jobqueue_jobs_enqueued_total"
    assert _value(s, enqueued, queue="default", task="echo") == 3
    assert _value(s, enqueued, queue="default", task="fail") == 1
    assert _value(s, enqueued, queue="other", task="echo") == 2
    finished = "jobqueue_jobs_finished_total"
    assert _value(s, finished, queue="default", task="echo", outcome="done") == 3
    assert _value(s, finished, queue="default", task="fail", outcome="retried") == 1
    assert _value(s, finished, queue="default", task="fail", outcome="failed") == 1
    assert _value(s, finished, queue="other", task="echo", outcome="cancelled") == 1
    assert _value(s, "jobqueue_job_duration_seconds_count", queue="default", task="echo") == 3
    assert _value(s, "jobqueue_job_duration_seconds_count", queue="default", task="fail") == 2
    assert _value(s, "jobqueue_job_wait_seconds_count", queue="default") == 5
    assert _value(s, "jobqueue_jobs", queue="default", status="done") == 3
    assert _value(s, "jobqueue_jobs", queue="default", status="failed") == 1
    assert _value(s, "jobqueue_jobs", queue="other", status="cancelled") == 1
    assert _value(s, "jobqueue_jobs", queue="other", status="todo") == 1
    assert _value(s, "jobqueue_oldest_todo_age_seconds", queue="other") > 0
    assert _value(s, "jobqueue_oldest_todo_age_seconds", queue="default") == 0
    assert _value(s, "jobqueue_workers_total") == 10
    assert _value(s, "jobqueue_workers_busy") == 0
    http = "jobqueue_http_requests_total"
    assert _value(s, http, method="POST", route="/jobs", status="201") == 6
    assert _value(s, http, method="POST", route="/jobs/{job_id}/cancel", status="200") == 1
    assert waiting > unserved


async def test_metrics_database_down_still_serves_counters(start_app: AppFactory) -> None:
    client = await start_app(
        database_url="postgresql://postgres@127.0.0.1:1/none", workers_enabled=False
    )
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "jobqueue_jobs_enqueued_total" in response.text


async def test_metrics_rescue_counts_rescued(database_url: str, db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO jobs (task, queue, status, attempts, worker_id, lease_expires_at)"
        " VALUES ('echo', 'default', 'in_progress', 1, 'gone', now() - interval '1 s')"
    )
    metrics = Metrics()
    engine = create_engine(database_url)
    try:
        rescuer = Rescuer(engine, 1.0, lambda _queues: None, metrics)
        assert len(await rescuer.rescue_once()) == 1
    finally:
        await engine.dispose()
    s = _samples(metrics.exposition().decode())
    assert (
        _value(s, "jobqueue_jobs_finished_total", queue="default", task="echo", outcome="rescued")
        == 1
    )


async def test_request_id_is_returned_and_honoured(client: httpx.AsyncClient) -> None:
    fresh = await client.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    bad = await client.get("/healthz", headers={"X-Request-ID": "has spaces"})
    assert bad.headers["x-request-id"] != "has spaces"


async def test_metrics_300_concurrent_scrapes_run_table_queries_once_and_reads_go_on(
    start_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await start_app(workers_enabled=False)
    metrics = client.runtime.service.metrics
    for i in range(50):  # a sizeable exposition: 50 x 40 duration histograms
        for j in range(40):
            metrics.duration.labels(f"q{i}", f"t{j}").observe(0.01)
    calls = 0
    original = dashboard_queries.count_by_queue_and_status

    async def counting(*args: Any, **kwargs: Any) -> dashboard_queries.QueueCounts:
        nonlocal calls
        calls += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(dashboard_queries, "count_by_queue_and_status", counting)
    assert (await client.post("/jobs", json={})).status_code == 201
    scrapes = asyncio.gather(*(client.get("/metrics") for _ in range(300)))
    read_seconds: list[float] = []
    while not scrapes.done():
        started = time.perf_counter()
        assert (await client.get("/jobs", params={"limit": "1"})).status_code == 200
        read_seconds.append(time.perf_counter() - started)
    responses = await scrapes
    assert {response.status_code for response in responses} == {200}
    assert len({response.content for response in responses}) == 1
    assert calls == 1
    print(f"GET /jobs?limit=1 during 300 scrapes: n={len(read_seconds)} max={max(read_seconds)}")
    # Reads were answered while the scrapes were in flight; the time each took is the
    # benchmark's business (bench/queue_names.py), not a test's.
    assert len(read_seconds) >= 3


async def test_metrics_table_holding_more_queues_than_the_limit_folds_the_rest(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    # Queues created before names were checked (or by hand): the table still holds them.
    await db.execute(
        "INSERT INTO jobs (task, queue, run_at) SELECT 'echo', 'old-' || i, now() - interval '1 h'"
        " FROM generate_series(1, 2000) AS i"
    )
    client = await start_app(workers_enabled=False, metrics_max_label_values=5)
    assert (await client.post("/jobs", json={})).status_code == 201
    response = await client.get("/metrics")
    s = _samples(response.text)
    queues = {dict(labels)["queue"] for (name, labels) in s if name == "jobqueue_jobs"}
    assert len(queues) == 6
    assert {"default", "other"} <= queues
    assert _value(s, "jobqueue_jobs", queue="default", status="todo") == 1
    assert _value(s, "jobqueue_jobs", queue="other", status="todo") == 2000 - 4
    assert _value(s, "jobqueue_oldest_todo_age_seconds", queue="other") >= 3600
    orphans = {
        dict(labels)["queue"] for (name, labels) in s if name == "jobqueue_jobs_without_worker"
    }
    assert len(orphans) <= 6
    assert len(response.content) < 20_000


async def test_metrics_dashboard_api_calls_have_their_own_route_label(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False)
    job_id = (await client.post("/jobs", json={})).json()["id"]
    assert (await client.get(f"/jobs/{job_id}")).status_code == 200
    assert (await client.get(f"/ui/api/jobs/{job_id}")).status_code == 200
    assert (await client.post(f"/ui/api/jobs/{job_id}/cancel")).status_code == 200
    assert (await client.get("/ui/api/overview")).status_code == 200
    s = _samples(client.runtime.service.metrics.exposition().decode())
    http = "jobqueue_http_requests_total"
    assert _value(s, http, method="GET", route="/jobs/{job_id}", status="200") == 1
    assert _value(s, http, method="GET", route="/ui/api/jobs/{job_id}", status="200") == 1
    assert _value(s, http, method="POST", route="/ui/api/jobs/{job_id}/cancel", status="200") == 1
    assert _value(s, http, method="GET", route="/ui/api/overview", status="200") == 1
    assert _value(s, http, method="POST", route="/jobs/{job_id}/cancel", status="200") == 0


async def test_metrics_table_health_and_estimated_flag_exported(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    await client.post("/jobs", json={"task": "echo"})
    text = (await client.get("/metrics")).text
    assert "jobqueue_jobs_estimated 0.0" in text
    assert "jobqueue_table_dead_tuples " in text
    assert "jobqueue_oldest_transaction_age_seconds " in text
    assert "jobqueue_table_last_autovacuum_timestamp_seconds " in text
    assert 'jobqueue_jobs{queue="default",status="todo"} 1.0' in text


async def test_metrics_docs_openapi_and_swagger_assets_have_their_own_route_labels(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False)
    for path in (
        "/docs",
        "/openapi.json",
        "/docs/static/swagger-ui.css",
        "/docs/static/swagger-ui-bundle.js",
        "/docs/oauth2-redirect",
        "/ui/static/dashboard.css",
    ):
        assert (await client.get(path)).status_code == 200, path
    assert (await client.head("/openapi.json")).status_code == 200
    assert (await client.get("/docs/static/no-such-file.js")).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404
    assert (await client.get("/openapi.json/x")).status_code == 404

    s = _samples((await client.get("/metrics")).text)
    http = "jobqueue_http_requests_total"
    counted = {
        (labels["method"], labels["route"], labels["status"]): value
        for (name, label_items), value in s.items()
        if name == http and value > 0
        for labels in [dict(label_items)]
    }
    assert counted == {
        ("GET", "/docs", "200"): 1,
        ("GET", "/openapi.json", "200"): 1,
        ("HEAD", "/openapi.json", "200"): 1,
        ("GET", "/docs/static/{path}", "200"): 2,
        ("GET", "/docs/static/{path}", "404"): 1,
        ("GET", "/docs/oauth2-redirect", "200"): 1,
        ("GET", "/ui/static/{path}", "200"): 1,
        ("GET", "unmatched", "404"): 2,
    }
