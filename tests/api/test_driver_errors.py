"""A driver error that escapes the service (not a connection fault) is a JSON 503 with a fixed
message and ``Retry-After: 1``, never a 500 and never the driver's text; the details go to the
log. ``/readyz`` answers 503 naming the database check. The faults are real: a column the
statements need is renamed under the running app."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy.exc
import structlog
from fastapi import Request

from jobqueue.api.errors import DRIVER_ERROR_DETAIL, MAX_LOGGED_ERROR_CHARS, driver_error
from tests.conftest import AppClient


async def test_api_driver_error_answers_503_fixed_detail(
    client: AppClient, db: asyncpg.Connection
) -> None:
    job_id = (await client.post("/jobs", json={"task": "echo"})).json()["id"]
    await db.execute("ALTER TABLE jobs RENAME COLUMN queue TO queue_renamed")
    response = await client.get(f"/jobs/{job_id}")
    assert response.status_code == 503
    assert response.json() == {"detail": DRIVER_ERROR_DETAIL}
    assert response.headers["retry-after"] == "1"


async def test_api_driver_error_logged_with_type_message_traceback_request_id(
    client: AppClient, db: asyncpg.Connection
) -> None:
    await db.execute("ALTER TABLE jobs RENAME COLUMN queue TO queue_renamed")
    with structlog.testing.capture_logs() as logs:
        response = await client.get("/jobs", headers={"X-Request-ID": "req-driver-1"})
    assert response.status_code == 503
    events = [e for e in logs if e["event"] == "database_error"]
    assert len(events) == 1
    event = events[0]
    assert (event["log_level"], event["request_id"]) == ("error", "req-driver-1")
    assert event["error_type"] == "sqlalchemy.exc.ProgrammingError"
    assert "column jobs.queue does not exist" in event["error"]
    assert event["cause_type"] == (
        "sqlalchemy.dialects.postgresql.asyncpg.AsyncAdapt_asyncpg_dbapi.ProgrammingError"
    )
    assert "in list_jobs" in event["traceback"]


async def test_readyz_driver_error_answers_503_naming_database(
    client: AppClient, db: asyncpg.Connection
) -> None:
    await db.execute("ALTER TABLE alembic_version RENAME COLUMN version_num TO renamed")
    with structlog.testing.capture_logs() as logs:
        response = await client.get("/readyz")
    assert response.status_code == 503
    # A fixed word for an unauthenticated caller; the class and the driver's text are logged.
    assert response.json()["checks"]["database"] == "unavailable"
    (event,) = [e for e in logs if e["event"] == "readyz_database_unavailable"]
    assert event["error"].startswith("ProgrammingError: ")


@pytest.mark.parametrize("length", [10, 100_000])
async def test_driver_error_log_message_bounded(length: int) -> None:
    # The driver's text may quote client input: the log keeps a bounded part of it.
    error = sqlalchemy.exc.ProgrammingError("SELECT 1", None, Exception("x" * length))
    request = Request({"type": "http", "method": "GET", "path": "/jobs", "headers": []})
    with structlog.testing.capture_logs() as logs:
        response = await driver_error(request, error)
    assert response.status_code == 503
    logged = logs[0]["error"]
    if length > MAX_LOGGED_ERROR_CHARS:
        assert logged == f"{str(error)[:MAX_LOGGED_ERROR_CHARS]}… ({len(str(error))} characters)"
    else:
        assert logged == str(error)
