"""Structured logs of a real server: one JSON event per job transition, request ids."""

from __future__ import annotations

import json

import httpx

from tests.e2e.procs import ServerFactory
from tests.helpers import wait_for_status


async def test_serve_json_logs_job_transition_and_request_id(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start(
        {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_LOG_FORMAT": "json"}
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(
            "/jobs", json={"task": "fail", "payload": {"secret": "s3"}, "max_attempts": 1},
            headers={"X-Request-ID": "req-42"},
        )  # fmt: skip
        assert response.headers["x-request-id"] == "req-42"
        job_id = response.json()["id"]
        await wait_for_status(client, job_id, {"failed"})
    await server.stop()

    lines = server.log_path.read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(events) == len([line for line in lines if line.strip()])  # every line is JSON
    (ran,) = [e for e in events if e["event"] == "job_ran" and e["job_id"] == job_id]
    assert (ran["queue"], ran["task"], ran["attempt"], ran["outcome"], ran["error_type"]) == (
        "default", "fail", 1, "failed", "RuntimeError"
    )  # fmt: skip
    assert ran["duration_ms"] >= 0
    assert ran["level"] == "info"
    assert "payload" not in ran
    assert "s3" not in server.log_path.read_text()
    (request,) = [e for e in events if e["event"] == "http_request" and e["route"] == "/jobs"]
    assert (request["request_id"], request["method"], request["status"]) == ("req-42", "POST", 201)
