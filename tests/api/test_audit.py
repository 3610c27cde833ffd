"""The audit trail: cancel and retry log one ``audit`` event with who, what, which job and the
outcome; a request refused with 403 logs one too (``outcome="denied"``)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import structlog

from tests.api.test_auth import ADMIN_KEY, WRITE_KEY, bearer, keyed_app, new_job
from tests.conftest import AppFactory


def audits(logs: list[MutableMapping[str, Any]]) -> list[dict[str, Any]]:
    """The audit events of captured logs, without the level."""
    return [
        {k: v for k, v in entry.items() if k != "log_level"}
        for entry in logs
        if entry["event"] == "audit"
    ]


async def test_cancel_with_key_logs_audit_event_naming_the_key(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    job_id = await new_job(client)
    with structlog.testing.capture_logs() as logs:
        response = await client.post(f"/jobs/{job_id}/cancel", headers=bearer(ADMIN_KEY))
    assert response.status_code == 200
    assert audits(logs) == [
        {
            "event": "audit",
            "principal": "ops",
            "via": "bearer",
            "action": "cancel",
            "job_id": job_id,
            "outcome": "ok",
            "status": "cancelled",
        }
    ]


async def test_retry_refused_logs_audit_event_with_the_error(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    job_id = await new_job(client)
    with structlog.testing.capture_logs() as logs:
        response = await client.post(f"/jobs/{job_id}/retry", headers=bearer(ADMIN_KEY))
    assert response.status_code == 409
    assert audits(logs) == [
        {
            "event": "audit",
            "principal": "ops",
            "via": "bearer",
            "action": "retry",
            "job_id": job_id,
            "outcome": "refused",
            "error": "JobStateConflict",
            "detail": f"job {job_id} is todo; only failed or cancelled jobs can be retried",
        }
    ]


async def test_cancel_without_keys_logs_anonymous(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    job_id = (await client.post("/jobs", json={})).json()["id"]
    with structlog.testing.capture_logs() as logs:
        await client.post(f"/jobs/{job_id}/cancel")
    (event,) = audits(logs)
    assert (event["principal"], event["via"], event["outcome"]) == ("anonymous", "open", "ok")


async def test_cancel_with_too_low_a_role_logs_denied(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    job_id = await new_job(client)
    with structlog.testing.capture_logs() as logs:
        response = await client.post(f"/jobs/{job_id}/cancel", headers=bearer(WRITE_KEY))
    assert response.status_code == 403
    assert audits(logs) == [
        {
            "event": "audit",
            "principal": "ci",
            "via": "bearer",
            "action": "POST /jobs/{job_id}/cancel",
            "outcome": "denied",
            "detail": "this needs the admin role; key 'ci' has the write role",
        }
    ]
