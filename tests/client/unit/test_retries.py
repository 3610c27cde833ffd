"""Which calls are sent again, how often and after how long: only calls that are safe to
repeat after a 503, a 429 or a lost connection; any call after a connection that could not
be made; never after another error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from jobqueue.client import (
    ConnectionFailed,
    Failure,
    JobQueue,
    JobSpec,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)
from jobqueue.client import _retry as retry_policy
from tests.client.mock import Script, answer, fails, job

SCHEDULE = {
    "name": "nightly",
    "cron": "0 3 * * *",
    "timezone": "UTC",
    "task": "echo",
    "payload": {},
    "queue": "default",
    "priority": 0,
    "paused": False,
    "source": "api",
    "next_run_at": "2026-11-30T03:00:00Z",
    "last_run_at": None,
    "last_job_id": None,
    "created_at": "2026-11-29T12:00:00Z",
    "updated_at": "2026-11-29T12:00:00Z",
}
REPORT = {"job_id": 7, "status": "done", "repeated": False}

Call = Callable[[JobQueue], Any]

# Each call with an answer that succeeds; `repeatable` says whether it may be sent again after
# the request may have reached the service.
CALLS: list[tuple[str, Call, Any, bool]] = [
    ("get", lambda jq: jq.get(7), job(), True),
    ("get-wait", lambda jq: jq.get(7, wait_seconds=5), job(), True),
    ("attempts", lambda jq: jq.attempts(7), {"items": []}, True),
    ("list_page", lambda jq: jq.list_page(), {"items": [], "next_cursor": None}, True),
    ("enqueue-keyed", lambda jq: jq.enqueue("echo", idempotency_key="k"), job(), True),
    (
        "enqueue_many-keyed",
        lambda jq: jq.enqueue_many([{"task": "echo", "idempotency_key": "a"}]),
        {"ids": [1]},
        True,
    ),
    ("cancel", lambda jq: jq.cancel(7), job(status="cancelled"), True),
    ("queues", lambda jq: jq.queues(), {"items": []}, True),
    ("pause", lambda jq: jq.pause("default"), {"name": "default", "paused": True}, True),
    ("resume", lambda jq: jq.resume("default"), {"name": "default", "paused": False}, True),
    ("workers", lambda jq: jq.workers(), {"items": [], "slots": 0, "busy": 0}, True),
    ("schedules", lambda jq: jq.schedules(), {"items": [], "next_after": None}, True),
    ("get_schedule", lambda jq: jq.get_schedule("nightly"), SCHEDULE, True),
    ("update_schedule", lambda jq: jq.update_schedule("nightly", cron="@daily"), SCHEDULE, True),
    ("pause_schedule", lambda jq: jq.pause_schedule("nightly"), SCHEDULE, True),
    ("heartbeat", lambda jq: jq.heartbeat(["t"]), {"leases": [], "drain": False}, True),
    ("complete", lambda jq: jq.complete("t", 1), REPORT, True),
    ("fail", lambda jq: jq.fail("t", message="x"), REPORT, True),
    ("release", lambda jq: jq.release("t"), REPORT, True),
    ("complete_many", lambda jq: jq.complete_many([("t", 1)]), {"leases": [REPORT]}, True),
    ("fail_many", lambda jq: jq.fail_many([Failure("t")]), {"leases": [REPORT]}, True),
    ("release_many", lambda jq: jq.release_many(["t"]), {"leases": [REPORT]}, True),
    ("enqueue", lambda jq: jq.enqueue("echo"), job(), False),
    (
        "enqueue_many-partly-keyed",
        lambda jq: jq.enqueue_many([JobSpec("echo", idempotency_key="a"), JobSpec("echo")]),
        {"ids": [1, 2]},
        False,
    ),
    ("retry", lambda jq: jq.retry(7), job(), False),
    ("create_schedule", lambda jq: jq.create_schedule("n", "@daily", "echo"), SCHEDULE, False),
    ("delete_schedule", lambda jq: jq.delete_schedule("nightly"), None, False),
    ("lease", lambda jq: jq.lease("default"), {"leases": [], "drain": False}, False),
]
REPEATABLE = [pytest.param(call, body, id=name) for name, call, body, ok in CALLS if ok]
NOT_REPEATABLE = [pytest.param(call, body, id=name) for name, call, body, ok in CALLS if not ok]
EVERY_CALL = [pytest.param(call, body, id=name) for name, call, body, _ in CALLS]


def success(body: Any) -> httpx.Response | Callable[[httpx.Request], httpx.Response]:
    return httpx.Response(204) if body is None else answer(200, body)


@pytest.mark.parametrize(("call", "body"), REPEATABLE)
def test_retry_repeatable_call_after_503_429_and_lost_answer_then_succeeds(
    call: Call, body: Any, sleeps: list[float]
) -> None:
    script = Script(
        answer(503, {"detail": "the database is not reachable; retry"}),
        answer(429, {"detail": "too many"}),
        fails(httpx.ReadError),
        success(body),
    )

    with script.client(retries=3) as jq:
        call(jq)

    assert script.count == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize(("call", "body"), NOT_REPEATABLE)
@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(answer(503, {"detail": "down"}), id="503"),
        pytest.param(fails(httpx.ReadError), id="read-error"),
        pytest.param(fails(httpx.ReadTimeout), id="read-timeout"),
        pytest.param(fails(httpx.RemoteProtocolError), id="disconnected"),
    ],
)
def test_retry_unrepeatable_call_is_sent_once_when_it_may_have_arrived(
    call: Call,
    body: Any,
    failure: httpx.Response | Callable[[httpx.Request], httpx.Response],
    sleeps: list[float],
) -> None:
    script = Script(failure, success(body))

    with script.client(retries=3) as jq, pytest.raises((ServiceUnavailable, ConnectionFailed)):
        call(jq)

    assert script.count == 1
    assert sleeps == []


@pytest.mark.parametrize(("call", "body"), EVERY_CALL)
@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout], ids=lambda e: e.__name__
)
def test_retry_every_call_is_sent_again_when_it_never_left(
    call: Call, body: Any, error: type[httpx.TransportError], sleeps: list[float]
) -> None:
    script = Script(fails(error), success(body))

    with script.client(retries=3) as jq:
        call(jq)

    assert script.count == 2
    assert len(sleeps) == 1


def test_retry_lease_after_429_which_leased_nothing(sleeps: list[float]) -> None:
    script = Script(
        answer(429, {"detail": "too many long-polls"}, {"Retry-After": "1"}),
        answer(200, {"leases": [], "drain": False}),
    )

    with script.client() as jq:
        batch = jq.lease(["default"])

    assert (batch.leases, batch.drain) == ([], False)
    assert script.count == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 500])
def test_retry_never_after_an_answer_other_than_429_or_503(status: int) -> None:
    script = Script(answer(status, {"detail": "no"}), answer(200, {"items": []}))

    with script.client(retries=3) as jq, pytest.raises(Exception, match="no"):
        jq.queues()

    assert script.count == 1


def test_retry_gives_up_after_retries_with_the_last_error(sleeps: list[float]) -> None:
    script = Script(answer(503, {"detail": "the database is not reachable; retry"}))

    with script.client(retries=2) as jq, pytest.raises(ServiceUnavailable) as raised:
        jq.get(7)

    assert script.count == 3
    assert len(sleeps) == 2
    assert raised.value.detail == "the database is not reachable; retry"


def test_retry_zero_retries_sends_once(sleeps: list[float]) -> None:
    script = Script(fails(httpx.ConnectError))

    with script.client(retries=0) as jq, pytest.raises(ConnectionFailed):
        jq.get(7)

    assert (script.count, sleeps) == (1, [])


def test_retry_backoff_grows_exponentially_with_jitter(sleeps: list[float]) -> None:
    script = Script(fails(httpx.ConnectError))

    with script.client(retries=6) as jq, pytest.raises(ConnectionFailed):
        jq.get(7)

    base, cap = retry_policy.BACKOFF_BASE_SECONDS, retry_policy.BACKOFF_CAP_SECONDS
    assert len(sleeps) == 6
    for number, pause in enumerate(sleeps):
        ceiling = min(cap, base * 2**number)
        assert ceiling / 2 <= pause <= ceiling


def test_retry_honours_retry_after(sleeps: list[float]) -> None:
    script = Script(
        answer(503, {"detail": "busy"}, {"Retry-After": "4"}),
        answer(200, {"items": []}),
    )

    with script.client() as jq:
        jq.queues()

    assert len(sleeps) == 1
    assert 4 <= sleeps[0] <= 4.4


def test_retry_retry_after_past_the_cap_is_raised_at_once(sleeps: list[float]) -> None:
    script = Script(answer(429, {"detail": "later"}, {"Retry-After": "120"}))

    with script.client() as jq, pytest.raises(TooManyRequests) as raised:
        jq.get(7, wait_seconds=10)

    assert (script.count, sleeps) == (1, [])
    assert raised.value.retry_after == 120


def test_retry_unsupported_url_is_not_sent_again(sleeps: list[float]) -> None:
    script = Script(fails(httpx.UnsupportedProtocol, "missing an 'http://' protocol"))

    with script.client() as jq, pytest.raises(ConnectionFailed):
        jq.get(7)

    assert (script.count, sleeps) == (1, [])


async def test_retry_async_repeatable_call_after_503_then_succeeds(sleeps: list[float]) -> None:
    script = Script(answer(503, {"detail": "down"}), answer(200, job(status="cancelled")))

    async with script.async_client() as jq:
        cancelled = await jq.cancel(7)

    assert cancelled.status == "cancelled"
    assert (script.count, len(sleeps)) == (2, 1)


async def test_retry_async_enqueue_without_key_is_sent_once(sleeps: list[float]) -> None:
    script = Script(fails(httpx.ReadError), answer(201, job()))

    async with script.async_client() as jq:
        with pytest.raises(ConnectionFailed) as raised:
            await jq.enqueue("echo")

    assert raised.value.request_sent is True
    assert (script.count, sleeps) == (1, [])


async def test_retry_async_not_found_is_not_retried() -> None:
    script = Script(answer(404, {"detail": "job 7 does not exist"}))

    async with script.async_client() as jq:
        with pytest.raises(NotFound):
            await jq.get(7)

    assert script.count == 1
