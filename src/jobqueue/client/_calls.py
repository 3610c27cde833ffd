"""Every API call the clients make, as a :class:`Call`: the request, whether it is safe to
repeat, and how to read the answer. :class:`JobQueue` sends them with httpx.Client,
:class:`AsyncJobQueue` with httpx.AsyncClient; neither builds a request itself.

Routes: ``api/routes/jobs.py``, ``queues.py``, ``processes.py``, ``schedules.py``, and the
lease protocol of docs/workers.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from jobqueue.client._base import default_worker_name
from jobqueue.client._leases import Failure, HeartbeatAnswer, LeaseBatch, Report
from jobqueue.client._models import (
    Attempt,
    Job,
    JobPage,
    JobSpec,
    ProcessList,
    Queue,
    QueueState,
    Schedule,
)
from jobqueue.client._retry import Call

MAX_WAIT_SECONDS = 60.0
"""The longest long-poll ``GET /jobs/{id}?wait_seconds=`` takes, seconds."""
LONG_POLL_MARGIN_SECONDS = 10.0
"""A long-poll's socket timeout is its wait plus this much (docs/workers.md), seconds."""
DEFAULT_PAGE_SIZE = 100
"""Jobs per ``GET /jobs`` request when walking every page."""
SCHEDULE_PAGE_SIZE = 500
"""Schedules per ``GET /schedules`` request (the route's maximum)."""

JsonObject = Mapping[str, Any]


def _segment(value: str | int) -> str:
    """A value as one path segment (a name or token cannot reach another route)."""
    return quote(str(value), safe="")


def _seconds(value: float) -> str:
    """Seconds as the API's URL parameters take them: decimal digits, never ``1e-05``."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _long_poll_timeout(timeout: float, wait_seconds: float) -> float:
    return max(timeout, wait_seconds + LONG_POLL_MARGIN_SECONDS)


def _job(response: httpx.Response) -> Job:
    return Job.from_json(response.json())


def _schedule(response: httpx.Response) -> Schedule:
    return Schedule.from_json(response.json())


def _report(response: httpx.Response) -> Report:
    return Report.from_json(response.json())


def _reports(response: httpx.Response) -> list[Report]:
    return [Report.from_json(item) for item in response.json()["leases"]]


def _nothing(_response: httpx.Response) -> None:
    return None


# --- jobs


def enqueue(spec: JobSpec) -> Call[Job]:
    """``POST /jobs``; repeatable when it has an idempotency key (the service answers the same
    job again)."""
    body = spec.to_json()
    if spec.idempotency_key is not None:
        return Call.repeatable("POST", "/jobs", _job, body=body)
    return Call("POST", "/jobs", _job, body=body)


def enqueue_many(specs: Iterable[JobSpec | JsonObject]) -> Call[list[int]]:
    """``POST /jobs/batch``; repeatable when every spec has an idempotency key (a replay
    answers the same ids)."""
    jobs = [spec.to_json() if isinstance(spec, JobSpec) else dict(spec) for spec in specs]

    def ids(response: httpx.Response) -> list[int]:
        return [int(job_id) for job_id in response.json()["ids"]]

    if jobs and all(job.get("idempotency_key") is not None for job in jobs):
        return Call.repeatable("POST", "/jobs/batch", ids, body={"jobs": jobs})
    return Call("POST", "/jobs/batch", ids, body={"jobs": jobs})


def get(job_id: int, wait_seconds: float | None, timeout: float) -> Call[Job]:
    """``GET /jobs/{id}``, a long-poll with ``wait_seconds`` (its socket timeout longer)."""
    if wait_seconds is None:
        return Call.repeatable("GET", f"/jobs/{_segment(job_id)}", _job)
    wait_seconds = round(wait_seconds, 3)  # as sent
    return Call.repeatable(
        "GET",
        f"/jobs/{_segment(job_id)}",
        _job,
        params={"wait_seconds": _seconds(wait_seconds)},
        timeout=_long_poll_timeout(timeout, wait_seconds),
    )


def attempts(job_id: int) -> Call[list[Attempt]]:
    """``GET /jobs/{id}/attempts``."""

    def parse(response: httpx.Response) -> list[Attempt]:
        return [Attempt.from_json(item) for item in response.json()["items"]]

    return Call.repeatable("GET", f"/jobs/{_segment(job_id)}/attempts", parse)


def list_page(
    status: str | None, queue: str | None, task: str | None, limit: int, cursor: str | None
) -> Call[JobPage]:
    """``GET /jobs``: one page."""
    params = {"status": status, "queue": queue, "task": task, "limit": limit, "cursor": cursor}
    return Call.repeatable(
        "GET",
        "/jobs",
        lambda response: JobPage.from_json(response.json()),
        params={name: value for name, value in params.items() if value is not None},
    )


def cancel(job_id: int) -> Call[Job]:
    """``POST /jobs/{id}/cancel``: repeatable (a cancelled job's cancel changes nothing)."""
    return Call.repeatable("POST", f"/jobs/{_segment(job_id)}/cancel", _job)


def retry(job_id: int) -> Call[Job]:
    """``POST /jobs/{id}/retry``: not repeatable (a repeat answers 409, or retries the job
    again after it failed again in between)."""
    return Call("POST", f"/jobs/{_segment(job_id)}/retry", _job)


# --- queues and processes


def queues() -> Call[list[Queue]]:
    """``GET /queues``."""

    def parse(response: httpx.Response) -> list[Queue]:
        return [Queue.from_json(item) for item in response.json()["items"]]

    return Call.repeatable("GET", "/queues", parse)


def pause(queue: str, paused: bool) -> Call[QueueState]:
    """``POST /queues/{name}/pause`` or ``/resume``: repeatable (the state is set, not
    toggled)."""
    action = "pause" if paused else "resume"
    return Call.repeatable(
        "POST",
        f"/queues/{_segment(queue)}/{action}",
        lambda response: QueueState.from_json(response.json()),
    )


def workers() -> Call[ProcessList]:
    """``GET /workers``."""
    return Call.repeatable(
        "GET", "/workers", lambda response: ProcessList.from_json(response.json())
    )


# --- schedules


def schedules_page(after: str) -> Call[tuple[list[Schedule], str | None]]:
    """``GET /schedules``: one page of schedules after the name ``after``, and where the next
    starts (None on the last)."""

    def parse(response: httpx.Response) -> tuple[list[Schedule], str | None]:
        data = response.json()
        return [Schedule.from_json(item) for item in data["items"]], data.get("next_after")

    params = {"after": after, "limit": SCHEDULE_PAGE_SIZE}
    return Call.repeatable("GET", "/schedules", parse, params=params)


def get_schedule(name: str) -> Call[Schedule]:
    """``GET /schedules/{name}``."""
    return Call.repeatable("GET", f"/schedules/{_segment(name)}", _schedule)


def create_schedule(fields: Mapping[str, Any]) -> Call[Schedule]:
    """``POST /schedules``: not repeatable (a repeat answers 409, the name being taken)."""
    body = {name: value for name, value in fields.items() if value is not None}
    return Call("POST", "/schedules", _schedule, body=body)


def update_schedule(name: str, changes: Mapping[str, Any]) -> Call[Schedule]:
    """``PATCH /schedules/{name}``: repeatable (it sets fields)."""
    body = {field: value for field, value in changes.items() if value is not None}
    return Call.repeatable("PATCH", f"/schedules/{_segment(name)}", _schedule, body=body)


def pause_schedule(name: str, paused: bool) -> Call[Schedule]:
    """``POST /schedules/{name}/pause`` or ``/resume``: repeatable."""
    action = "pause" if paused else "resume"
    return Call.repeatable("POST", f"/schedules/{_segment(name)}/{action}", _schedule)


def delete_schedule(name: str) -> Call[None]:
    """``DELETE /schedules/{name}``: not repeatable (a repeat answers 404)."""
    return Call("DELETE", f"/schedules/{_segment(name)}", _nothing)


# --- the lease protocol (docs/workers.md)


def lease(
    queues: Sequence[str],
    tasks: Sequence[str] | None,
    max_jobs: int,
    lease_seconds: float | None,
    wait_seconds: float,
    worker: str | Mapping[str, Any] | None,
    timeout: float,
    complete: Iterable[tuple[str, Any]] = (),
    fail: Iterable[Failure | JsonObject] = (),
) -> Call[LeaseBatch]:
    """``POST /leases``: not repeatable once sent (a lost answer would lease jobs nobody runs
    until their leases expire), except after a 429, which leased nothing (reports it carried
    were written, and answer ``repeated`` when sent again)."""
    body: dict[str, Any] = {"queues": list(queues), "max_jobs": max_jobs}
    completions = [{"token": token, "result": result} for token, result in complete]
    if completions:
        body["complete"] = completions
    failures = _failure_items(fail)
    if failures:
        body["fail"] = failures
    body["wait_seconds"] = wait_seconds
    if tasks is not None:
        body["tasks"] = list(tasks)
    if lease_seconds is not None:
        body["lease_seconds"] = lease_seconds
    if worker is None:
        worker = default_worker_name()
    body["worker"] = worker if isinstance(worker, str) else dict(worker)
    return Call(
        "POST",
        "/leases",
        lambda response: LeaseBatch.from_json(response.json()),
        body=body,
        retry_statuses=frozenset({429}),
        timeout=_long_poll_timeout(timeout, wait_seconds),
    )


def heartbeat(tokens: Sequence[str], lease_seconds: float | None) -> Call[HeartbeatAnswer]:
    """``POST /leases/heartbeat``: repeatable."""
    body: dict[str, Any] = {"tokens": list(tokens)}
    if lease_seconds is not None:
        body["lease_seconds"] = lease_seconds
    return Call.repeatable(
        "POST",
        "/leases/heartbeat",
        lambda response: HeartbeatAnswer.from_json(response.json()),
        body=body,
    )


def complete(token: str, result: Any) -> Call[Report]:
    """``POST /leases/{token}/complete``: repeatable (a repeat answers ``repeated``)."""
    return Call.repeatable(
        "POST", f"/leases/{_segment(token)}/complete", _report, body={"result": result}
    )


def fail(failure: Failure) -> Call[Report]:
    """``POST /leases/{token}/fail``: repeatable (a repeat answers ``repeated``)."""
    return Call.repeatable(
        "POST",
        f"/leases/{_segment(failure.token)}/fail",
        _report,
        body=failure.to_json(with_token=False),
    )


def release(token: str) -> Call[Report]:
    """``POST /leases/{token}/release``: repeatable (a repeat after a lost answer raises
    :class:`LeaseLost`, which is harmless: the job is no longer yours)."""
    return Call.repeatable("POST", f"/leases/{_segment(token)}/release", _report)


def complete_many(items: Iterable[tuple[str, Any]]) -> Call[list[Report]]:
    """``POST /leases/complete``: repeatable."""
    leases = [{"token": token, "result": result} for token, result in items]
    return Call.repeatable("POST", "/leases/complete", _reports, body={"leases": leases})


def fail_many(failures: Iterable[Failure | JsonObject]) -> Call[list[Report]]:
    """``POST /leases/fail``: repeatable."""
    return Call.repeatable(
        "POST", "/leases/fail", _reports, body={"leases": _failure_items(failures)}
    )


def _failure_items(failures: Iterable[Failure | JsonObject]) -> list[JsonObject]:
    """The items of ``POST /leases/fail`` (and of a lease call's ``fail``)."""
    return [
        failure.to_json(with_token=True) if isinstance(failure, Failure) else dict(failure)
        for failure in failures
    ]


def release_many(tokens: Iterable[str]) -> Call[list[Report]]:
    """``POST /leases/release``: repeatable."""
    return Call.repeatable("POST", "/leases/release", _reports, body={"tokens": list(tokens)})
