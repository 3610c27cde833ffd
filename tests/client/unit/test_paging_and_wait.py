"""``list`` walks every page of ``GET /jobs`` by its cursor; ``wait`` long-polls in steps of
at most 60 s and turns the final status into a result or an error."""

from __future__ import annotations

import httpx
import pytest

from jobqueue.client import JobCancelled, JobFailed, NotFound, WaitTimeout
from tests.client.mock import Script, answer, job


def pages() -> Script:
    """Five jobs, newest first, two a page, whatever limit is asked."""
    return Script(
        answer(200, {"items": [job(id=5), job(id=4)], "next_cursor": "c2"}),
        answer(200, {"items": [job(id=3), job(id=2)], "next_cursor": "c4"}),
        answer(200, {"items": [job(id=1)], "next_cursor": None}),
    )


def test_list_walks_every_page_by_its_cursor() -> None:
    script = pages()

    with script.client() as jq:
        ids = [found.id for found in jq.list(status="done", page_size=2)]

    assert ids == [5, 4, 3, 2, 1]
    assert [r.url.params.get("cursor") for r in script.requests] == [None, "c2", "c4"]
    assert {r.url.params["status"] for r in script.requests} == {"done"}
    assert {r.url.params["limit"] for r in script.requests} == {"2"}


def test_list_fetches_pages_only_as_the_iteration_goes() -> None:
    script = pages()

    with script.client() as jq:
        jobs = jq.list(page_size=2)
        assert script.count == 0
        assert next(jobs).id == 5
        assert script.count == 1


def test_list_limit_stops_after_that_many_jobs() -> None:
    script = pages()

    with script.client() as jq:
        ids = [found.id for found in jq.list(limit=3, page_size=2)]

    assert ids == [5, 4, 3]
    assert script.count == 2
    assert [r.url.params["limit"] for r in script.requests] == ["2", "1"]


def test_list_empty_listing_is_one_request() -> None:
    script = Script(answer(200, {"items": [], "next_cursor": None}))

    with script.client() as jq:
        assert list(jq.list()) == []

    assert script.count == 1


async def test_list_async_walks_every_page() -> None:
    script = pages()

    async with script.async_client() as jq:
        ids = [found.id async for found in jq.list(page_size=2)]

    assert ids == [5, 4, 3, 2, 1]
    assert script.count == 3


def test_wait_done_returns_the_result() -> None:
    script = Script(answer(200, job(status="done", result={"echo": {"n": 1}})))

    with script.client() as jq:
        assert jq.wait(7, timeout=10) == {"echo": {"n": 1}}

    assert script.requests[0].url.params["wait_seconds"] == "10"


def test_wait_polls_in_steps_of_at_most_60_seconds() -> None:
    script = Script(
        answer(200, job(status="in_progress")),
        answer(200, job(status="in_progress")),
        answer(200, job(status="done", result=42)),
    )

    with script.client() as jq:
        assert jq.wait(7, timeout=150) == 42

    steps = [float(r.url.params["wait_seconds"]) for r in script.requests]
    assert len(steps) == 3
    assert all(59 < step <= 60 for step in steps)


def test_wait_failed_raises_job_failed_with_the_error() -> None:
    failed = job(status="failed", error="RuntimeError: boom", attempts=1, max_attempts=1)
    script = Script(answer(200, failed))

    with script.client() as jq, pytest.raises(JobFailed) as raised:
        jq.wait(7, timeout=5)

    assert raised.value.error == "RuntimeError: boom"
    assert (raised.value.job.id, raised.value.job.status) == (7, "failed")
    assert str(raised.value) == "job 7 failed: RuntimeError: boom"


def test_wait_cancelled_raises_job_cancelled() -> None:
    script = Script(answer(200, job(status="cancelled")))

    with script.client() as jq, pytest.raises(JobCancelled) as raised:
        jq.wait(7, timeout=5)

    assert raised.value.job.status == "cancelled"


def test_wait_not_final_in_time_raises_wait_timeout() -> None:
    script = Script(answer(200, job(status="todo")))

    with script.client() as jq, pytest.raises(WaitTimeout) as raised:
        jq.wait(7, timeout=0)

    assert isinstance(raised.value, TimeoutError)
    assert raised.value.job is not None
    assert raised.value.job.status == "todo"
    assert script.count == 1
    assert "wait_seconds" not in script.requests[0].url.params  # a zero wait looks once


def test_wait_missing_job_raises_not_found() -> None:
    script = Script(answer(404, {"detail": "job 7 does not exist"}))

    with script.client() as jq, pytest.raises(NotFound):
        jq.wait(7, timeout=5)


def test_wait_long_poll_socket_timeout_outlasts_the_step() -> None:
    script = Script(answer(200, job(status="done", result=None)))

    with script.client(timeout=2.0) as jq:
        jq.wait(7, timeout=30)

    timeouts: dict[str, float] = script.requests[0].extensions["timeout"]
    assert timeouts["read"] >= 40.0


async def test_wait_async_failed_raises_job_failed() -> None:
    script = Script(
        answer(200, job(status="in_progress")),
        answer(200, job(status="failed", error="ValueError: x")),
    )

    async with script.async_client() as jq:
        with pytest.raises(JobFailed) as raised:
            await jq.wait(7, timeout=100)

    assert raised.value.error == "ValueError: x"
    assert script.count == 2


async def test_wait_async_timeout() -> None:
    script = Script(answer(200, job(status="in_progress")))

    async with script.async_client() as jq:
        with pytest.raises(WaitTimeout):
            await jq.wait(7, timeout=0)


def test_wait_transport_error_on_poll_is_connection_failed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=request)

    script = Script(refuse)

    with script.client(retries=0) as jq, pytest.raises(Exception, match="cannot reach"):
        jq.wait(7, timeout=5)
