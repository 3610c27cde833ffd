"""The answers as frozen dataclasses: every field, times parsed and aware, JSON values left
as they are, the original object kept in ``raw``; and what ``import jobqueue.client``
loads."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

import jobqueue.client
from jobqueue.client import (
    HeartbeatAnswer,
    Job,
    LeaseBatch,
    Queue,
    Report,
)
from tests.client.mock import JOB, Script, answer, job


def test_job_has_every_field_the_api_answers() -> None:
    fields = {field.name for field in dataclasses.fields(Job)} - {"raw"}

    assert fields == set(JOB)


def test_job_from_json_parses_times_and_keeps_json_values() -> None:
    data = job(
        status="done",
        result=[1, {"a": None}],
        started_at="2026-11-29T12:00:00.002000Z",
        finished_at="2026-11-29T12:00:00.003000Z",
        lease_expires_at=None,
    )

    parsed = Job.from_json(data)

    assert parsed.created_at == datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert parsed.finished_at == datetime(2026, 11, 29, 12, 0, 0, 3000, tzinfo=UTC)
    assert parsed.lease_expires_at is None
    assert parsed.result == [1, {"a": None}]
    assert parsed.payload == {"n": 1}
    assert parsed.is_final
    assert parsed.raw == data


def test_job_is_frozen_and_compares_without_raw() -> None:
    one = Job.from_json(job())
    other = Job.from_json({**job(), "new_field": 1})

    assert one == other
    assert "raw" not in repr(one)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.status = "done"  # type: ignore[misc]


def test_get_returns_the_parsed_job() -> None:
    script = Script(answer(200, job(status="in_progress", worker_id="web-1:42:ab")))

    with script.client() as jq:
        found = jq.get(7)

    assert (found.id, found.status, found.worker_id) == (7, "in_progress", "web-1:42:ab")
    assert json.dumps(found.raw)  # printable as the service sent it


def test_queue_from_json() -> None:
    queue = Queue.from_json(
        {
            "name": "emails",
            "counts": {"todo": 2, "in_progress": 0, "done": 5, "failed": 0, "cancelled": 0},
            "paused": True,
            "paused_at": "2026-11-29T12:00:00Z",
            "paused_by": "ops",
            "slots_online": 4,
            "oldest_due_seconds": 0.8,
            "counts_estimated": False,
        }
    )

    assert (queue.name, queue.counts["done"], queue.paused_by) == ("emails", 5, "ops")
    assert queue.paused_at == datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert queue.oldest_due_seconds == 0.8


def test_lease_batch_from_json() -> None:
    batch = LeaseBatch.from_json(
        {
            "leases": [
                {
                    "token": "jl1.abc",
                    "expires_at": "2026-12-07T12:00:30.000000Z",
                    "lease_seconds": 30.0,
                    "heartbeat_seconds": 10.0,
                    "job": {
                        "id": 12,
                        "queue": "default",
                        "task": "resize",
                        "payload": {"w": 64},
                        "attempt": 1,
                        "max_attempts": 3,
                        "timeout_seconds": 300.0,
                    },
                }
            ],
            "drain": False,
        }
    )

    (lease,) = batch.leases
    assert lease.token == "jl1.abc"
    assert lease.expires_at == datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC)
    assert (lease.lease_seconds, lease.heartbeat_seconds) == (30.0, 10.0)
    assert (lease.job.id, lease.job.task, lease.job.payload) == (12, "resize", {"w": 64})
    assert (lease.job.attempt, lease.job.max_attempts, lease.job.timeout_seconds) == (1, 3, 300)
    assert batch.drain is False


def test_heartbeat_answer_from_json() -> None:
    answer_ = HeartbeatAnswer.from_json(
        {
            "leases": [
                {
                    "token": "a",
                    "status": "extended",
                    "cancel_requested": True,
                    "expires_at": "2026-12-07T12:00:30Z",
                },
                {"token": "b", "status": "lost", "cancel_requested": False, "expires_at": None},
            ],
            "drain": True,
        }
    )

    assert [(i.token, i.status, i.cancel_requested) for i in answer_.leases] == [
        ("a", "extended", True),
        ("b", "lost", False),
    ]
    assert answer_.leases[1].expires_at is None
    assert answer_.drain is True


def test_report_lost_item_of_a_batch() -> None:
    lost = Report.from_json(
        {"token": "b", "job_id": None, "status": "lease_lost", "repeated": False}
    )
    done = Report.from_json({"job_id": 12, "status": "done", "repeated": True})

    assert (lost.lost, lost.token, lost.job_id) == (True, "b", None)
    assert (done.lost, done.repeated, done.token) == (False, True, None)


def test_every_client_export_resolves() -> None:
    for name in jobqueue.client.__all__:
        assert getattr(jobqueue.client, name) is not None


def test_import_client_loads_none_of_the_servers_stack() -> None:
    probe = """
import json, sys
import jobqueue
root = set(sys.modules)
import jobqueue.client
loaded = sorted(set(sys.modules) - root)
print(json.dumps(loaded))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)

    server = {
        "alembic", "asyncpg", "cronsim", "fastapi", "jinja2", "prometheus_client", "pydantic",
        "pydantic_core", "sqlalchemy", "starlette", "structlog", "typer", "uvicorn",
    }  # fmt: skip
    assert [m for m in loaded if m.split(".")[0] in server] == []
    jobqueue_modules = [m for m in loaded if m.split(".")[0] == "jobqueue"]
    assert jobqueue_modules
    assert all(m.startswith("jobqueue.client") for m in jobqueue_modules), jobqueue_modules
