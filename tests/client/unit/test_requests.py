"""What the client sends: the key, each route's path, query and body, and the socket timeout
of a long-poll."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from jobqueue.client import Failure, JobQueue, JobSpec
from tests.client.mock import URL, Script, answer, job

REPORT = {"job_id": 7, "status": "done", "repeated": False}


def read_timeout(request: httpx.Request) -> float:
    timeouts: dict[str, float] = request.extensions["timeout"]
    return timeouts["read"]


def test_request_key_is_sent_as_bearer_token() -> None:
    script = Script(answer(200, {"items": []}))

    with JobQueue(URL, "s3cret-key", transport=httpx.MockTransport(script)) as jq:
        jq.queues()

    assert script.requests[0].headers["authorization"] == "Bearer s3cret-key"
    assert script.requests[0].headers["user-agent"].startswith("jobqueue-client/")


def test_request_without_key_sends_no_authorization() -> None:
    script = Script(answer(200, {"items": []}))

    with script.client() as jq:
        jq.queues()

    assert "authorization" not in script.requests[0].headers


def test_request_one_client_reuses_its_connection_pool() -> None:
    script = Script(answer(200, {"items": []}))

    with script.client() as jq:
        first = jq._http
        jq.queues()
        jq.queues()

    assert jq._http is first
    assert first.is_closed


def test_request_url_path_prefix_is_kept() -> None:
    script = Script(answer(200, job()))

    with JobQueue(f"{URL}/jobqueue/", transport=httpx.MockTransport(script)) as jq:
        jq.get(7)

    assert str(script.requests[0].url) == f"{URL}/jobqueue/jobs/7"


def test_request_enqueue_sends_the_fields_that_are_set() -> None:
    script = Script(answer(201, job()))
    run_at = datetime(2030, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))

    with script.client() as jq:
        jq.enqueue(
            "sleep",
            {"seconds": 2},
            queue="emails",
            priority=5,
            run_at=run_at,
            max_attempts=2,
            timeout_seconds=10.5,
            idempotency_key="order-42",
            description="two seconds",
        )
        jq.enqueue("echo")

    assert (script.requests[0].method, script.requests[0].url.path) == ("POST", "/jobs")
    assert script.body(0) == {
        "task": "sleep",
        "payload": {"seconds": 2},
        "queue": "emails",
        "priority": 5,
        "run_at": "2030-01-01T09:00:00+01:00",
        "max_attempts": 2,
        "timeout_seconds": 10.5,
        "idempotency_key": "order-42",
        "description": "two seconds",
    }
    assert script.body(1) == {"task": "echo"}


def test_request_enqueue_many_sends_specs_and_dicts_in_order() -> None:
    script = Script(answer(201, {"ids": [4, 5]}))

    with script.client() as jq:
        ids = jq.enqueue_many(
            [JobSpec("echo", {"n": 1}, delay_seconds=3), {"task": "fail", "max_attempts": 1}]
        )

    assert ids == [4, 5]
    assert script.requests[0].url.path == "/jobs/batch"
    assert script.body() == {
        "jobs": [
            {"task": "echo", "payload": {"n": 1}, "delay_seconds": 3},
            {"task": "fail", "max_attempts": 1},
        ]
    }


@pytest.mark.parametrize(
    ("wait_seconds", "sent", "timeout"),
    [
        (None, None, 30.0),
        (5, "5", 30.0),
        (2.5, "2.5", 30.0),
        (60, "60", 70.0),
        (55.25, "55.25", 65.25),
    ],
)
def test_request_get_wait_is_decimal_seconds_with_a_longer_socket_timeout(
    wait_seconds: float | None, sent: str | None, timeout: float
) -> None:
    script = Script(answer(200, job()))

    with script.client(timeout=30.0) as jq:
        jq.get(7, wait_seconds=wait_seconds)

    request = script.requests[0]
    assert request.url.path == "/jobs/7"
    assert request.url.params.get("wait_seconds") == sent
    assert read_timeout(request) == timeout


def test_request_list_page_sends_filters_and_cursor() -> None:
    script = Script(answer(200, {"items": [], "next_cursor": None}))

    with script.client() as jq:
        jq.list_page(status="done", queue="emails", task="echo", limit=10, cursor="aWQ6MTI")

    assert dict(script.requests[0].url.params) == {
        "status": "done",
        "queue": "emails",
        "task": "echo",
        "limit": "10",
        "cursor": "aWQ6MTI",
    }


def test_request_names_in_paths_are_one_segment() -> None:
    script = Script(answer(200, {"name": "a/b", "paused": True}))

    with script.client() as jq:
        jq.pause("a/b")

    assert script.requests[0].url.raw_path == b"/queues/a%2Fb/pause"


def test_request_schedule_calls_use_the_schedule_routes() -> None:
    schedule = {
        "name": "nightly",
        "cron": "0 3 * * *",
        "timezone": "Europe/Paris",
        "task": "echo",
        "payload": {"report": "daily"},
        "queue": "default",
        "priority": 0,
        "paused": False,
        "source": "api",
        "next_run_at": "2026-11-30T02:00:00Z",
        "last_run_at": None,
        "last_job_id": None,
        "created_at": "2026-11-29T12:00:00Z",
        "updated_at": "2026-11-29T12:00:00Z",
    }
    script = Script(
        answer(201, schedule),
        answer(200, schedule),
        answer(200, schedule),
        answer(200, schedule),
        httpx.Response(204),
    )

    with script.client() as jq:
        jq.create_schedule(
            "nightly", "0 3 * * *", "echo", payload={"report": "daily"}, timezone="Europe/Paris"
        )
        jq.update_schedule("nightly", cron="30 3 * * *")
        jq.pause_schedule("nightly")
        jq.resume_schedule("nightly")
        jq.delete_schedule("nightly")

    sent = [(r.method, r.url.path) for r in script.requests]
    assert sent == [
        ("POST", "/schedules"),
        ("PATCH", "/schedules/nightly"),
        ("POST", "/schedules/nightly/pause"),
        ("POST", "/schedules/nightly/resume"),
        ("DELETE", "/schedules/nightly"),
    ]
    assert script.body(0) == {
        "name": "nightly",
        "cron": "0 3 * * *",
        "task": "echo",
        "payload": {"report": "daily"},
        "timezone": "Europe/Paris",
    }
    assert script.body(1) == {"cron": "30 3 * * *"}


def test_request_schedules_walks_every_page() -> None:
    def schedule(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "cron": "@daily",
            "timezone": "UTC",
            "task": "echo",
            "payload": {},
            "queue": "default",
            "priority": 0,
            "paused": False,
            "source": "api",
            "next_run_at": "2026-11-30T00:00:00Z",
            "last_run_at": None,
            "last_job_id": None,
            "created_at": "2026-11-29T12:00:00Z",
            "updated_at": "2026-11-29T12:00:00Z",
        }

    script = Script(
        answer(200, {"items": [schedule("a"), schedule("b")], "next_after": "b"}),
        answer(200, {"items": [schedule("c")], "next_after": None}),
    )

    with script.client() as jq:
        names = [s.name for s in jq.schedules()]

    assert names == ["a", "b", "c"]
    assert [r.url.params["after"] for r in script.requests] == ["", "b"]


def test_request_lease_body_and_socket_timeout_past_the_wait() -> None:
    script = Script(answer(200, {"leases": [], "drain": True}))

    with script.client(timeout=5.0) as jq:
        batch = jq.lease(
            ["images", "default"],
            tasks=["resize"],
            max_jobs=10,
            lease_seconds=30,
            wait_seconds=20,
            worker={"name": "img-1", "host": "box-3", "slots": 50},
        )

    assert batch.drain is True
    request = script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/leases")
    assert script.body() == {
        "queues": ["images", "default"],
        "tasks": ["resize"],
        "max_jobs": 10,
        "lease_seconds": 30,
        "wait_seconds": 20,
        "worker": {"name": "img-1", "host": "box-3", "slots": 50},
    }
    assert read_timeout(request) >= 30.0


def test_request_lease_carrying_reports_sends_them_and_reads_their_answers() -> None:
    report = {"job_id": 7, "status": "done", "repeated": False, "token": "t7"}
    failed = {"job_id": 8, "status": "todo", "repeated": True, "token": "t8"}
    script = Script(
        answer(200, {"leases": [], "drain": False, "completed": [report], "failed": [failed]})
    )

    with script.client() as jq:
        batch = jq.lease(
            "default",
            worker="w",
            complete=[("t7", {"ok": 1})],
            fail=[{"token": "t8", "message": "boom", "retryable": True}],
        )

    body = script.body()
    assert body["complete"] == [{"token": "t7", "result": {"ok": 1}}]
    assert body["fail"] == [{"token": "t8", "message": "boom", "retryable": True}]
    assert [(r.job_id, r.status, r.repeated, r.token) for r in batch.completed] == [
        (7, "done", False, "t7")
    ]
    assert [(r.job_id, r.status, r.repeated) for r in batch.failed] == [(8, "todo", True)]


def test_request_lease_defaults_and_one_queue_name() -> None:
    script = Script(answer(200, {"leases": [], "drain": False}))

    with script.client(timeout=30.0) as jq:
        jq.lease("default", worker="img-1")

    assert script.body() == {
        "queues": ["default"],
        "max_jobs": 1,
        "wait_seconds": 0.0,
        "worker": "img-1",
    }
    assert read_timeout(script.requests[0]) == 30.0


def test_request_lease_without_worker_names_this_process() -> None:
    script = Script(answer(200, {"leases": [], "drain": False}))

    with script.client() as jq:
        jq.lease("default")

    name = script.body()["worker"]
    assert re.fullmatch(r"[A-Za-z0-9_.:@-]{1,100}", name)
    assert name.endswith(f":{os.getpid()}")


def test_request_heartbeat_sends_every_token_in_one_request() -> None:
    script = Script(answer(200, {"leases": [], "drain": False}))

    with script.client() as jq:
        jq.heartbeat(["jl1.a", "jl1.b"], lease_seconds=60)
        jq.heartbeat("jl1.c")

    assert [r.url.path for r in script.requests] == ["/leases/heartbeat"] * 2
    assert script.body(0) == {"tokens": ["jl1.a", "jl1.b"], "lease_seconds": 60}
    assert script.body(1) == {"tokens": ["jl1.c"]}


def test_request_reports_name_the_token_in_the_path() -> None:
    script = Script(answer(200, REPORT))

    with script.client() as jq:
        jq.complete("jl1.a/b", {"width": 32})
        jq.complete("jl1.c")
        jq.fail(
            "jl1.d",
            error_type="ValueError",
            message="bad",
            traceback="Traceback ...",
            retryable=False,
            retry_delay_seconds=5,
        )
        jq.fail("jl1.e")
        jq.release("jl1.f")

    assert [r.url.raw_path for r in script.requests] == [
        b"/leases/jl1.a%2Fb/complete",
        b"/leases/jl1.c/complete",
        b"/leases/jl1.d/fail",
        b"/leases/jl1.e/fail",
        b"/leases/jl1.f/release",
    ]
    assert script.body(0) == {"result": {"width": 32}}
    assert script.body(1) == {"result": None}
    assert script.body(2) == {
        "error_type": "ValueError",
        "message": "bad",
        "traceback": "Traceback ...",
        "retryable": False,
        "retry_delay_seconds": 5,
    }
    assert script.body(3) == {"retryable": True}
    assert script.body(4) is None


def test_request_batch_reports_send_one_item_per_lease() -> None:
    script = Script(answer(200, {"leases": [{**REPORT, "token": "a"}]}))

    with script.client() as jq:
        jq.complete_many([("a", 1), ("b", None)])
        jq.fail_many([Failure("a", message="x"), {"token": "b", "retryable": False}])
        jq.release_many(["a", "b"])

    assert [r.url.path for r in script.requests] == [
        "/leases/complete",
        "/leases/fail",
        "/leases/release",
    ]
    assert script.body(0) == {
        "leases": [{"token": "a", "result": 1}, {"token": "b", "result": None}]
    }
    assert script.body(1) == {
        "leases": [
            {"token": "a", "message": "x", "retryable": True},
            {"token": "b", "retryable": False},
        ]
    }
    assert script.body(2) == {"tokens": ["a", "b"]}


def test_request_job_spec_run_at_aware_datetime_is_rfc3339() -> None:
    spec = JobSpec("echo", run_at=datetime(2030, 1, 1, 9, tzinfo=UTC))

    assert spec.to_json() == {"task": "echo", "run_at": "2030-01-01T09:00:00+00:00"}


@pytest.mark.parametrize(("timeout", "retries"), [(0, 3), (-1, 3), (float("nan"), 3), (5, -1)])
def test_request_client_refuses_a_bad_timeout_or_retries(timeout: float, retries: int) -> None:
    with pytest.raises(ValueError, match=r"timeout|retries"):
        JobQueue(URL, timeout=timeout, retries=retries)
