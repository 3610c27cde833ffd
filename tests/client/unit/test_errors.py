"""The client's error tree: each answer the service gives maps to its class, with the
service's detail in the message; a missing answer is a ConnectionFailed."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from jobqueue.client import (
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    IdempotencyConflict,
    JobQueueClientError,
    LeaseLost,
    NotFound,
    ServerError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from tests.client.mock import Script, answer, fails


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, ApiError),
        (422, ValidationFailed),
        (429, TooManyRequests),
        (500, ServerError),
        (502, ServerError),
        (503, ServiceUnavailable),
    ],
)
def test_error_status_maps_to_its_class_with_the_detail(
    status: int, error_type: type[ApiError]
) -> None:
    script = Script(answer(status, {"detail": "job 424242 does not exist"}))

    with script.client(retries=0) as jq, pytest.raises(error_type) as raised:
        jq.get(424242)

    assert type(raised.value) is error_type
    assert raised.value.status_code == status
    assert raised.value.detail == "job 424242 does not exist"
    assert str(raised.value) == (
        f"{status} from GET http://jq.test/jobs/424242: job 424242 does not exist"
    )
    assert raised.value.response is not None
    assert raised.value.response.status_code == status


def test_error_409_lease_lost_code_is_lease_lost() -> None:
    body = {"detail": "the lease of job 12 was lost", "code": "lease_lost"}
    script = Script(answer(409, body))

    with script.client() as jq, pytest.raises(LeaseLost) as raised:
        jq.complete("jl1.abc", {"ok": True})

    assert isinstance(raised.value, Conflict)
    assert (raised.value.code, raised.value.detail) == ("lease_lost", body["detail"])


@pytest.mark.parametrize(
    "detail",
    [
        "idempotency key 'order-42' was used for job 7 with a different payload: use a new key "
        "for a new job, or resend the original request",
        "jobs[3]: idempotency key 'k' was used for job 9 with a different task: use a new key "
        "for a new job, or resend the original request",
    ],
)
def test_error_409_about_an_idempotency_key_is_idempotency_conflict(detail: str) -> None:
    script = Script(answer(409, {"detail": detail}))

    with script.client() as jq, pytest.raises(IdempotencyConflict) as raised:
        jq.enqueue("echo", {"n": 2}, idempotency_key="order-42")

    assert isinstance(raised.value, Conflict)
    assert raised.value.detail == detail


def test_error_409_about_a_job_state_is_plain_conflict() -> None:
    detail = "job 5 is done; only todo or in_progress jobs can be cancelled"
    script = Script(answer(409, {"detail": detail}))

    with script.client() as jq, pytest.raises(Conflict) as raised:
        jq.cancel(5)

    assert type(raised.value) is Conflict
    assert detail in str(raised.value)


def test_error_422_schema_errors_are_listed_in_the_message() -> None:
    detail = [
        {"type": "int_type", "loc": ["body", "priority"], "msg": "Input should be a valid int"},
        {"type": "missing", "loc": ["body", "jobs", 3, "task"], "msg": "Field required"},
    ]
    script = Script(answer(422, {"detail": detail}))

    with script.client() as jq, pytest.raises(ValidationFailed) as raised:
        jq.enqueue("echo")

    assert raised.value.detail == detail
    assert str(raised.value).endswith(
        ": body.priority: Input should be a valid int; body.jobs.3.task: Field required"
    )


def test_error_without_json_body_keeps_the_text_as_detail() -> None:
    script = Script(httpx.Response(502, text="<html>Bad gateway</html>"))

    with script.client(retries=0) as jq, pytest.raises(ServerError) as raised:
        jq.queues()

    assert raised.value.detail == "<html>Bad gateway</html>"
    assert raised.value.code is None


@pytest.mark.parametrize(
    ("status", "error_type"), [(429, TooManyRequests), (503, ServiceUnavailable)]
)
def test_error_retry_after_seconds_is_read(
    status: int, error_type: type[TooManyRequests | ServiceUnavailable]
) -> None:
    script = Script(answer(status, {"detail": "later"}, {"Retry-After": "7"}))

    with script.client(retries=0) as jq, pytest.raises(error_type) as raised:
        jq.get(1)

    assert isinstance(raised.value, TooManyRequests | ServiceUnavailable)
    assert raised.value.retry_after == 7.0


def test_error_retry_after_http_date_is_seconds_from_now() -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    script = Script(answer(503, {"detail": "later"}, {"Retry-After": when}))

    with script.client(retries=0) as jq, pytest.raises(ServiceUnavailable) as raised:
        jq.get(1)

    assert raised.value.retry_after is not None
    assert 17 <= raised.value.retry_after <= 21


def test_error_retry_after_absent_or_unreadable_is_none() -> None:
    script = Script(
        answer(503, {"detail": "a"}), answer(503, {"detail": "b"}, {"Retry-After": "x"})
    )

    with script.client(retries=0) as jq:
        for _ in range(2):
            with pytest.raises(ServiceUnavailable) as raised:
                jq.get(1)
            assert raised.value.retry_after is None


def test_error_connection_refused_is_connection_failed_not_sent() -> None:
    script = Script(fails(httpx.ConnectError, "[Errno 111] Connection refused"))

    with script.client(retries=0) as jq, pytest.raises(ConnectionFailed) as raised:
        jq.get(3)

    assert raised.value.request_sent is False
    assert raised.value.reason == "[Errno 111] Connection refused"
    assert str(raised.value) == (
        "cannot reach GET http://jq.test/jobs/3: [Errno 111] Connection refused"
    )
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("error", [httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_error_lost_answer_is_connection_failed_maybe_sent(
    error: type[httpx.TransportError],
) -> None:
    script = Script(fails(error))

    with script.client(retries=0) as jq, pytest.raises(ConnectionFailed) as raised:
        jq.get(3)

    assert raised.value.request_sent is True


def test_error_unexpected_answer_is_a_client_error_not_a_key_error() -> None:
    script = Script(httpx.Response(200, text="<html>a proxy's page</html>"))

    with script.client() as jq, pytest.raises(JobQueueClientError) as raised:
        jq.get(3)

    assert "unexpected answer 200 to GET /jobs/3" in str(raised.value)


def test_error_tree_has_one_base() -> None:
    for error_type in (ApiError, ConnectionFailed, LeaseLost, IdempotencyConflict):
        assert issubclass(error_type, JobQueueClientError)
    assert issubclass(ServiceUnavailable, ServerError)


async def test_error_async_client_maps_the_same_way() -> None:
    script = Script(answer(404, {"detail": "job 9 does not exist"}))

    async with script.async_client() as jq:
        with pytest.raises(NotFound) as raised:
            await jq.get(9)

    assert raised.value.detail == "job 9 does not exist"
