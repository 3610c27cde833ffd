"""``jobqueue.client.Worker`` against an in-memory lease service (no HTTP, no database).

The fake answers like docs/workers.md says the service does: a long-poll that wakes on new
jobs, batched heartbeats with ``extended``/``lost``/``busy`` and ``cancel_requested``, fenced
reports (an unknown token is ``LeaseLost``). Tests wait on conditions with deadlines; the short
sleeps inside tasks only simulate work.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import itertools
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobqueue.client import ConnectionFailed, ServiceUnavailable, ValidationFailed, _worker
from jobqueue.client._worker import Discard, RetryLater, TaskContext, Worker

pytestmark = [pytest.mark.unit, pytest.mark.client]


def unavailable() -> ServiceUnavailable:
    """What the client raises on a 503."""
    return ServiceUnavailable(503, "the database is unavailable")


def refused() -> ConnectionFailed:
    """What the client raises when the service cannot be reached."""
    return ConnectionFailed(None, "[Errno 111] Connection refused", request_sent=False)


@dataclass(frozen=True)
class FakeJob:
    id: int
    task: str = "work"
    payload: Any = None
    queue: str = "default"
    attempt: int = 1
    max_attempts: int = 3
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class FakeLease:
    token: str
    job: FakeJob
    expires_at: datetime
    lease_seconds: float
    heartbeat_seconds: float


@dataclass(frozen=True)
class FakeItem:
    token: str
    status: str
    cancel_requested: bool = False


@dataclass(frozen=True)
class FakeAnswer:
    leases: list[FakeItem]
    drain: bool = False


@dataclass(frozen=True)
class FakeReport:
    job_id: int | None
    status: str
    repeated: bool = False
    token: str | None = None


@dataclass(frozen=True)
class FakeBatch:
    leases: list[FakeLease]
    drain: bool = False
    completed: list[FakeReport] = field(default_factory=list)
    failed: list[FakeReport] = field(default_factory=list)


@dataclass
class FakeService:
    """The lease API in memory, for one worker; every call is recorded with its time.

    ``lease_errors``/``report_errors`` are raised, one per call, before anything else;
    ``down`` makes heartbeats and reports raise ``ServiceUnavailable``; ``statuses`` and
    ``cancel`` set what heartbeats say of a job; ``drain_once`` makes the next heartbeat
    answer ``drain: true``; ``refuse`` is a result that makes a batch holding it a 422.
    """

    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    todo: list[FakeJob] = field(default_factory=list)
    held: dict[str, FakeJob] = field(default_factory=dict)
    lease_calls: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    heartbeat_calls: list[tuple[float, list[str]]] = field(default_factory=list)
    report_calls: list[tuple[str, list[str]]] = field(default_factory=list)
    completed: dict[int, Any] = field(default_factory=dict)
    failed: dict[int, dict[str, Any]] = field(default_factory=dict)
    release_calls: list[list[str]] = field(default_factory=list)
    lease_errors: list[Exception] = field(default_factory=list)
    carry_errors: list[Exception] = field(default_factory=list)
    carried_written: list[int | None] = field(default_factory=list)
    report_errors: list[Exception] = field(default_factory=list)
    statuses: dict[int, str] = field(default_factory=dict)
    cancel: set[int] = field(default_factory=set)
    down: bool = False
    drain_once: bool = False
    drained_at: float | None = None
    refuse: Any = "never refused"
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, *jobs: FakeJob) -> None:
        self.todo.extend(jobs)
        self.arrived.set()

    def token_of(self, job_id: int) -> str:
        return next(token for token, job in self.held.items() if job.id == job_id)

    async def lease(
        self,
        queues: Sequence[str],
        *,
        tasks: Sequence[str] | None = None,
        max_jobs: int = 1,
        lease_seconds: float | None = None,
        wait_seconds: float = 0.0,
        worker: str | dict[str, Any] | None = None,
        complete: Iterable[tuple[str, Any]] = (),
        fail: Iterable[Mapping[str, Any]] = (),
    ) -> FakeBatch:
        loop = asyncio.get_running_loop()
        completes, fails = list(complete), list(fail)
        self.lease_calls.append(
            (
                loop.time(),
                {
                    "queues": list(queues),
                    "tasks": tasks,
                    "max_jobs": max_jobs,
                    "lease_seconds": lease_seconds,
                    "wait_seconds": wait_seconds,
                    "worker": worker,
                    "held": len(self.held),
                    "carried": len(completes) + len(fails),
                },
            )
        )
        if self.lease_errors:
            raise self.lease_errors.pop(0)
        if (completes or fails) and self.carry_errors:
            raise self.carry_errors.pop(0)
        # Carried reports: written first, as the service does; such a call does not wait.
        completed = await self.complete_many(completes) if completes else []
        failed = await self.fail_many(fails) if fails else []
        self.carried_written.extend(report.job_id for report in [*completed, *failed])
        if completes or fails:
            wait_seconds = 0.0
        if not self.todo:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), wait_seconds)
        taken, self.todo = self.todo[:max_jobs], self.todo[max_jobs:]
        leases = []
        for job in taken:
            token = f"jl1.{job.id}.{job.attempt}"
            self.held[token] = job
            leases.append(
                FakeLease(token, job, datetime.now(UTC), self.lease_seconds, self.heartbeat_seconds)
            )
        return FakeBatch(leases, completed=completed, failed=failed)

    async def heartbeat(
        self, tokens: Sequence[str], lease_seconds: float | None = None
    ) -> FakeAnswer:
        self.heartbeat_calls.append((asyncio.get_running_loop().time(), list(tokens)))
        if self.down:
            raise unavailable()
        items = []
        for token in tokens:
            job = self.held.get(token)
            if job is None:
                items.append(FakeItem(token, "lost"))
                continue
            items.append(
                FakeItem(token, self.statuses.get(job.id, "extended"), job.id in self.cancel)
            )
        drain, self.drain_once = self.drain_once, False
        if drain:
            self.drained_at = asyncio.get_running_loop().time()
        return FakeAnswer(items, drain)

    def _calling(self, kind: str, tokens: list[str]) -> None:
        self.report_calls.append((kind, tokens))
        if self.down:
            raise unavailable()
        if self.report_errors:
            raise self.report_errors.pop(0)

    async def complete_many(self, items: Iterable[tuple[str, Any]]) -> list[FakeReport]:
        pairs = list(items)
        self._calling("complete", [token for token, _ in pairs])
        if any(result == self.refuse for _, result in pairs):
            raise ValidationFailed(422, "a result is over JOBQUEUE_MAX_RESULT_BYTES")
        reports = []
        for token, result in pairs:
            job = self.held.pop(token, None)
            if job is None:
                reports.append(FakeReport(None, "lease_lost", token=token))
                continue
            self.completed[job.id] = result
            reports.append(FakeReport(job.id, "done", token=token))
        return reports

    async def fail_many(self, failures: Iterable[Mapping[str, Any]]) -> list[FakeReport]:
        bodies = [dict(failure) for failure in failures]
        self._calling("fail", [body["token"] for body in bodies])
        reports = []
        for body in bodies:
            token = body.pop("token")
            job = self.held.pop(token, None)
            if job is None:
                reports.append(FakeReport(None, "lease_lost", token=token))
                continue
            self.failed[job.id] = body
            status = "todo" if body["retryable"] else "failed"
            reports.append(FakeReport(job.id, status, token=token))
        return reports

    async def release_many(self, tokens: Sequence[str]) -> list[FakeReport]:
        self.release_calls.append(list(tokens))
        reports = []
        for token in tokens:
            job = self.held.pop(token, None)
            reports.append(FakeReport(job.id if job else 0, "todo" if job else "lease_lost"))
        return reports

    async def aclose(self) -> None:
        return None


def make_worker(service: FakeService, **options: Any) -> Worker:
    """A worker on ``service`` with short waits and backoffs (options override)."""
    values: dict[str, Any] = {
        "concurrency": 4,
        "wait_seconds": 0.05,
        "grace_seconds": 5.0,
        "name": "test-worker",
    }
    values.update(options)
    worker = Worker("http://fake", client=service, **values)
    worker.backoff_min_seconds = 0.02
    worker.backoff_max_seconds = 0.1
    worker.stop_grace_seconds = 0.5
    return worker


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """``worker.run()`` in a task; stopped (and awaited, 10 s at most) on exit."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``predicate`` every 5 ms; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.005)


def blocker() -> tuple[asyncio.Event, list[int], list[int]]:
    """``(release, started, cancelled)`` for tasks that wait on ``release``."""
    return asyncio.Event(), [], []


async def test_worker_concurrency_limit_is_never_exceeded() -> None:
    service = FakeService()
    service.add(*(FakeJob(i, payload={"n": i}) for i in range(1, 13)))
    worker = make_worker(service, concurrency=3)
    now = peak = 0

    @worker.task("work")
    async def work(payload: dict[str, int]) -> int:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.01 * (payload["n"] % 4 + 1))
        now -= 1
        return payload["n"] * 2

    async with running(worker):
        await until(lambda: len(service.completed) == 12, "12 jobs completed")

    assert peak == 3
    assert service.completed == {i: i * 2 for i in range(1, 13)}
    assert all(1 <= call["max_jobs"] <= 3 for _, call in service.lease_calls)


async def test_worker_reports_ride_on_the_next_lease_call() -> None:
    service = FakeService()
    service.add(*(FakeJob(i, payload={"n": i}) for i in range(1, 21)))
    worker = make_worker(service, concurrency=4)

    @worker.task("work")
    async def work(payload: dict[str, int]) -> int:
        if payload["n"] % 5 == 0:
            raise Discard("multiples of five are refused")
        return payload["n"]

    async with running(worker):
        await until(lambda: len(service.completed) + len(service.failed) == 20, "20 reports")

    assert service.completed == {i: i for i in range(1, 21) if i % 5}
    assert sorted(service.failed) == [5, 10, 15, 20]
    # No-op tasks end as soon as they start: their slots free while their reports wait, so the
    # lease call that follows carries them (one request per batch instead of two).
    carried = sum(call["carried"] for _, call in service.lease_calls)
    assert carried >= 16, service.lease_calls


async def test_worker_reports_a_failed_lease_call_carried_are_sent_on_their_own() -> None:
    service = FakeService()
    service.add(FakeJob(1), FakeJob(2))
    worker = make_worker(service, concurrency=1)

    @worker.task("work")
    async def work(payload: Any) -> str:
        return "ok"

    # The first lease call carrying a report fails: that report is sent by the reports loop
    # on its own (POST /leases/complete), and every job is completed once.
    service.carry_errors = [unavailable()]
    async with running(worker):
        await until(lambda: len(service.completed) == 2, "2 jobs completed")

    assert service.completed == {1: "ok", 2: "ok"}
    assert service.carry_errors == []
    carrying = [call for _, call in service.lease_calls if call["carried"]]
    assert len(carrying) >= 1
    assert [tokens for kind, tokens in service.report_calls].count(["jl1.1.1"]) == 1


async def test_worker_stops_carrying_reports_when_the_service_does_not_take_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A service older than the lease call's complete/fail fields answers 422 naming them as
    # extra fields: the worker goes on (the reports are sent on their own) and carries none.
    service = FakeService()
    service.add(*(FakeJob(i) for i in range(1, 9)))
    extra = [{"loc": ["body", "complete"], "msg": "Extra inputs", "type": "extra_forbidden"}]
    service.carry_errors = [ValidationFailed(422, extra) for _ in range(100)]
    worker = make_worker(service, concurrency=1)

    @worker.task("work")
    async def work(payload: Any) -> str:
        return "ok"

    async with running(worker):
        await until(lambda: len(service.completed) == 8, "8 jobs completed")

    assert service.completed == {i: "ok" for i in range(1, 9)}
    assert len(service.carry_errors) == 99  # one refusal, then no call carried reports
    assert "lease_reports_not_carried" in caplog.text


async def test_worker_a_report_refused_on_a_lease_call_is_not_carried_again() -> None:
    # Results the service refuses (422) made the lease calls carrying them fail, and after
    # three such calls the worker carried no report any more (fresh-user finding). Now a refused
    # report goes on its own (its attempt fails, "too large"), and the others still ride.
    service = FakeService(refuse="too large")
    service.add(*(FakeJob(i, payload={"n": i}) for i in range(1, 41)))
    worker = make_worker(service, concurrency=4)

    @worker.task("work")
    async def work(payload: dict[str, int]) -> Any:
        await asyncio.sleep(0.001 * (payload["n"] % 3))
        return "too large" if payload["n"] % 4 == 0 else payload["n"]

    async with running(worker):
        await until(lambda: len(service.completed) + len(service.failed) == 40, "40 reports")

    assert service.completed == {i: i for i in range(1, 41) if i % 4}
    assert sorted(service.failed) == list(range(4, 41, 4))
    late = [job_id for job_id in service.carried_written if job_id is not None and job_id > 20]
    assert late, service.carried_written  # reports of the last jobs still rode on lease calls


async def test_worker_lease_request_names_tasks_queues_and_worker() -> None:
    service = FakeService()
    worker = make_worker(service, queues=["a", "b"], concurrency=7, lease_seconds=12.0)
    worker.task("zeta")(lambda payload: None)
    worker.task("alpha")(lambda payload: None)

    async with running(worker):
        await until(lambda: bool(service.lease_calls), "a lease call")

    call = service.lease_calls[0][1]
    assert call == {
        "queues": ["a", "b"],
        "tasks": ["alpha", "zeta"],
        "max_jobs": 7,
        "lease_seconds": 12.0,
        "wait_seconds": 0.05,
        "worker": {"name": "test-worker", "host": worker.host, "slots": 7},
        "held": 0,
        "carried": 0,
    }


async def test_worker_sync_tasks_run_in_threads_with_their_context() -> None:
    service = FakeService()
    service.add(*(FakeJob(i, payload=i, attempt=2) for i in range(1, 9)))
    worker = make_worker(service, concurrency=4)
    lock = threading.Lock()
    now = peak = 0
    threads: set[str] = set()

    @worker.task("work")
    def work(payload: int, ctx: TaskContext) -> list[int]:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
            threads.add(threading.current_thread().name)
        time.sleep(0.03)
        with lock:
            now -= 1
        return [payload, ctx.job_id, ctx.attempt]

    async with running(worker):
        await until(lambda: len(service.completed) == 8, "8 jobs completed")

    assert service.completed == {i: [i, i, 2] for i in range(1, 9)}
    assert 1 < peak <= 4
    assert threading.current_thread().name not in threads
    assert len(threads) <= 4


async def test_worker_heartbeats_all_held_leases_in_one_call_per_interval() -> None:
    service = FakeService(lease_seconds=0.6, heartbeat_seconds=0.05)
    service.add(FakeJob(1), FakeJob(2), FakeJob(3))
    worker = make_worker(service, concurrency=3)
    release, started, _ = blocker()

    @worker.task("work")
    async def work(payload: None, ctx: TaskContext) -> str:
        started.append(ctx.job_id)
        await release.wait()
        return "ok"

    async with running(worker):
        await until(lambda: len(service.heartbeat_calls) >= 5, "5 heartbeats")
        release.set()
        await until(lambda: len(service.completed) == 3, "3 jobs completed")

    calls = service.heartbeat_calls[:5]
    tokens = {"jl1.1.1", "jl1.2.1", "jl1.3.1"}
    assert all(sorted(sent) == sorted(tokens) for _, sent in calls)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(calls)]
    assert all(gap >= 0.045 for gap in gaps), gaps


async def test_worker_lost_lease_cancels_the_task_and_never_reports_it() -> None:
    service = FakeService(heartbeat_seconds=0.03)
    service.add(FakeJob(1))
    service.statuses[1] = "lost"
    worker = make_worker(service)
    _, started, cancelled = blocker()

    @worker.task("work")
    async def work(payload: None, ctx: TaskContext) -> str:
        started.append(ctx.job_id)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(ctx.job_id)
            raise
        return "never"

    async with running(worker):
        await until(lambda: cancelled == [1], "the attempt cancelled")
        await until(lambda: worker.held == 0, "the slot freed")

    assert service.report_calls == []
    assert service.release_calls == []


async def test_worker_cancel_requested_cancels_the_task_and_reports_a_retryable_failure() -> None:
    service = FakeService(heartbeat_seconds=0.03)
    service.add(FakeJob(1))
    service.cancel.add(1)
    worker = make_worker(service)
    cancel_seen: list[bool] = []

    @worker.task("work")
    async def work(payload: None, ctx: TaskContext) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancel_seen.append(ctx.cancelled)
            raise
        return "never"

    async with running(worker):
        await until(lambda: 1 in service.failed, "the job failed")

    assert cancel_seen == [True]
    assert service.failed[1]["retryable"] is True
    assert service.failed[1]["error_type"] == "Cancelled"
    assert service.completed == {}


async def test_worker_busy_heartbeat_leaves_the_job_running() -> None:
    service = FakeService(heartbeat_seconds=0.03)
    service.add(FakeJob(1))
    service.statuses[1] = "busy"
    worker = make_worker(service)
    release = asyncio.Event()

    @worker.task("work")
    async def work(payload: None) -> str:
        await release.wait()
        return "ok"

    async with running(worker):
        await until(lambda: len(service.heartbeat_calls) >= 3, "3 heartbeats")
        release.set()
        await until(lambda: 1 in service.completed, "the job completed")

    assert service.completed == {1: "ok"}


async def test_worker_async_task_past_its_timeout_is_a_retryable_timeout_failure() -> None:
    service = FakeService()
    service.add(FakeJob(1, timeout_seconds=0.05))
    worker = make_worker(service)

    @worker.task("work")
    async def work(payload: None) -> str:
        await asyncio.sleep(30)
        return "late"

    async with running(worker):
        await until(lambda: 1 in service.failed, "the job failed")

    failure = service.failed[1]
    assert failure["error_type"] == "TimeoutError"
    assert failure["message"] == "attempt exceeded timeout_seconds=0.05"
    assert failure["retryable"] is True


async def test_worker_async_task_ignoring_its_cancellation_is_abandoned_as_timed_out() -> None:
    service = FakeService(heartbeat_seconds=0.03)
    service.add(FakeJob(1, timeout_seconds=0.05), FakeJob(2))
    worker = make_worker(service, concurrency=1)
    worker.stop_grace_seconds = 0.1
    refused: list[int] = []
    test_over = asyncio.Event()  # the test loop's end waits for every task, abandoned or not

    @worker.task("work")
    async def work(payload: None, ctx: TaskContext) -> str:
        while ctx.job_id == 1 and not test_over.is_set():  # the misbehaviour under test
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                refused.append(ctx.job_id)
        return "ok"

    async with running(worker):
        await until(lambda: 2 in service.completed, "the next job completed in the freed slot")
    test_over.set()

    assert len(refused) >= 2  # its deadline, then the worker's stop
    assert service.failed[1]["error_type"] == "TimeoutError"
    assert "ignored being cancelled" in service.failed[1]["message"]


async def test_worker_sync_task_past_its_timeout_fails_and_sees_its_cancel_event() -> None:
    service = FakeService()
    service.add(FakeJob(1, timeout_seconds=0.05))
    worker = make_worker(service)
    saw_cancel = threading.Event()

    @worker.task("work")
    def work(payload: None, ctx: TaskContext) -> str:
        if ctx.cancel_event.wait(10):
            saw_cancel.set()
        return "late"

    async with running(worker):
        await until(lambda: 1 in service.failed, "the job failed")
        await until(saw_cancel.is_set, "the function told to stop")

    assert service.failed[1]["error_type"] == "TimeoutError"
    assert service.failed[1]["retryable"] is True
    assert service.completed == {}


async def test_worker_exception_is_a_retryable_failure_with_its_traceback() -> None:
    service = FakeService()
    service.add(FakeJob(1))
    worker = make_worker(service)

    @worker.task("work")
    async def work(payload: None) -> None:
        raise ValueError("bad input")

    async with running(worker):
        await until(lambda: 1 in service.failed, "the job failed")

    failure = service.failed[1]
    assert failure["error_type"] == "ValueError"
    assert failure["message"] == "bad input"
    assert "raise ValueError" in failure["traceback"]
    assert failure["retryable"] is True
    assert failure["retry_delay_seconds"] is None


async def test_worker_retry_later_sends_its_delay() -> None:
    service = FakeService()
    service.add(FakeJob(1))
    worker = make_worker(service)

    @worker.task("work")
    def work(payload: None) -> None:
        raise RetryLater(7.5, "not uploaded yet")

    async with running(worker):
        await until(lambda: 1 in service.failed, "the job failed")

    failure = service.failed[1]
    assert (failure["error_type"], failure["message"]) == ("RetryLater", "not uploaded yet")
    assert (failure["retryable"], failure["retry_delay_seconds"]) == (True, 7.5)


async def test_worker_discard_is_not_retryable() -> None:
    service = FakeService()
    service.add(FakeJob(1))
    worker = make_worker(service)

    @worker.task("work")
    async def work(payload: None) -> None:
        raise Discard("never works")

    async with running(worker):
        await until(lambda: 1 in service.failed, "the job failed")

    assert service.failed[1]["retryable"] is False
    assert service.failed[1]["error_type"] == "Discard"


async def test_worker_result_that_is_not_json_is_a_failure() -> None:
    service = FakeService()
    service.add(FakeJob(1))
    worker = make_worker(service)

    @worker.task("work")
    async def work(payload: None) -> float:
        return float("nan")

    async with running(worker):
        await until(lambda: 1 in service.failed, "the job failed")

    assert service.failed[1]["error_type"] == "TypeError"
    assert "not JSON-serialisable" in service.failed[1]["message"]


async def test_worker_graceful_shutdown_completes_short_jobs_and_releases_long_ones() -> None:
    service = FakeService()
    service.add(FakeJob(1, "short"), FakeJob(2, "long"), FakeJob(3, "short"), FakeJob(4, "long"))
    worker = make_worker(service, concurrency=4, grace_seconds=0.5)
    _, started, cancelled = blocker()

    @worker.task("short")
    async def short(payload: None, ctx: TaskContext) -> str:
        started.append(ctx.job_id)
        await asyncio.sleep(0.1)
        return "short"

    @worker.task("long")
    async def long(payload: None, ctx: TaskContext) -> str:
        started.append(ctx.job_id)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(ctx.job_id)
            raise
        return "never"

    run = asyncio.create_task(worker.run())
    await until(lambda: len(started) == 4, "4 jobs started")
    leases_before = len(service.lease_calls)
    stopped_at = asyncio.get_running_loop().time()
    worker.stop()
    await asyncio.wait_for(run, 5)
    took = asyncio.get_running_loop().time() - stopped_at

    assert service.completed == {1: "short", 3: "short"}
    assert sorted(cancelled) == [2, 4]
    assert [sorted(tokens) for tokens in service.release_calls] == [["jl1.2.1", "jl1.4.1"]]
    assert service.held == {}
    assert 0.45 <= took < 1.5
    assert len(service.lease_calls) == leases_before


async def test_worker_second_stop_cuts_the_grace_short() -> None:
    service = FakeService()
    service.add(FakeJob(1))
    worker = make_worker(service, grace_seconds=30.0)
    _, started, _ = blocker()

    @worker.task("work")
    async def work(payload: None, ctx: TaskContext) -> None:
        started.append(ctx.job_id)
        await asyncio.Event().wait()

    run = asyncio.create_task(worker.run())
    await until(lambda: started == [1], "the job started")
    worker.stop()
    worker.stop()
    await asyncio.wait_for(run, 3)

    assert service.release_calls == [["jl1.1.1"]]


async def test_worker_backs_off_while_the_service_is_down_at_lease_time() -> None:
    service = FakeService()
    service.lease_errors = [
        unavailable(),
        refused(),
        unavailable(),
        refused(),
        unavailable(),
    ]
    service.add(FakeJob(1))
    worker = make_worker(service)
    worker.task("work")(lambda payload: "done")

    async with running(worker):
        await until(lambda: 1 in service.completed, "the job completed once the service is up")

    times = [at for at, _ in service.lease_calls[:6]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 0.02 s doubling to 0.1 s, each cut by up to half at random.
    floors = [0.01, 0.02, 0.04, 0.05, 0.05]
    assert all(gap >= floor * 0.95 for gap, floor in zip(gaps, floors, strict=True)), gaps
    assert max(gaps) < 1.0


async def test_worker_report_is_retried_while_the_service_is_down() -> None:
    service = FakeService()
    service.report_errors = [unavailable(), refused()]
    service.add(FakeJob(1))
    worker = make_worker(service)
    worker.task("work")(lambda payload: "done")

    async with running(worker):
        await until(lambda: 1 in service.completed, "the job completed")

    assert [kind for kind, _ in service.report_calls] == ["complete"] * 3


async def test_worker_report_gives_up_when_the_lease_would_have_expired() -> None:
    service = FakeService(lease_seconds=0.3, heartbeat_seconds=0.1)
    service.add(FakeJob(1))
    service.down = True
    worker = make_worker(service)
    worker.task("work")(lambda payload: "done")

    async with running(worker):
        await until(lambda: bool(service.report_calls), "a report tried")
        await until(lambda: worker.held == 0, "the report given up", timeout=3.0)
        calls = len(service.report_calls)
        service.down = False
        service.add(FakeJob(2))
        await until(lambda: 2 in service.completed, "the next job completed")

    assert calls >= 2
    assert service.report_calls[:calls] == [("complete", ["jl1.1.1"])] * calls
    assert 1 not in service.completed


async def test_worker_report_of_a_lost_lease_is_dropped_without_retry() -> None:
    service = FakeService()
    service.add(FakeJob(1), FakeJob(2))
    worker = make_worker(service, concurrency=1)

    @worker.task("work")
    def work(payload: None, ctx: TaskContext) -> str:
        if ctx.job_id == 1:  # rescued meanwhile: the lease is gone when the report arrives
            del service.held[service.token_of(1)]
        return "done"

    async with running(worker):
        await until(lambda: 2 in service.completed, "the next job completed")

    assert service.report_calls == [("complete", ["jl1.1.1"]), ("complete", ["jl1.2.1"])]
    assert service.completed == {2: "done"}


async def test_worker_reports_finished_together_go_in_one_request() -> None:
    service = FakeService()
    service.add(*(FakeJob(i, payload=i) for i in range(1, 21)))
    worker = make_worker(service, concurrency=20)

    @worker.task("work")
    async def work(payload: int) -> int:
        return payload

    async with running(worker):
        await until(lambda: len(service.completed) == 20, "20 jobs completed")

    assert service.completed == {i: i for i in range(1, 21)}
    sent = [tokens for kind, tokens in service.report_calls if kind == "complete"]
    assert len(sent) <= 2
    assert sorted(token for tokens in sent for token in tokens) == sorted(
        f"jl1.{i}.1" for i in range(1, 21)
    )


async def test_worker_refused_batch_is_sent_one_by_one_and_the_refused_result_fails() -> None:
    service = FakeService()
    service.refuse = "too big"
    service.add(FakeJob(1, payload="ok"), FakeJob(2, payload="too big"), FakeJob(3, payload="ok"))
    worker = make_worker(service, concurrency=3)
    release = asyncio.Event()

    @worker.task("work")
    async def work(payload: str) -> str:
        await release.wait()
        return payload

    async with running(worker):
        await until(lambda: worker.held == 3, "3 jobs running")
        release.set()
        await until(lambda: len(service.completed) + len(service.failed) == 3, "3 reports")

    assert service.completed == {1: "ok", 3: "ok"}
    assert service.failed[2]["error_type"] == "ValidationFailed"
    assert service.failed[2]["retryable"] is True


async def test_worker_drain_pauses_leasing() -> None:
    service = FakeService(heartbeat_seconds=0.05)
    service.add(FakeJob(1))
    service.drain_once = True
    worker = make_worker(service, concurrency=2)
    worker.drain_pause_seconds = 0.4
    release = asyncio.Event()

    @worker.task("work")
    async def work(payload: None) -> None:
        await release.wait()

    async with running(worker):
        await until(lambda: service.drained_at is not None, "a drain answer")
        drained_at = service.drained_at
        assert drained_at is not None
        await until(
            lambda: service.lease_calls[-1][0] > drained_at + 0.4, "leasing again", timeout=3.0
        )
        release.set()

    after = [at - drained_at for at, _ in service.lease_calls if at > drained_at]
    # A long-poll in flight at the drain (0.05 s) may end; none starts within the pause.
    assert all(not 0.06 < at < 0.38 for at in after), after


def test_worker_refuses_options_outside_the_service_bounds() -> None:
    with pytest.raises(ValueError, match="concurrency must be 1 to 1000") as info:
        Worker(concurrency=0, name="bad name", wait_seconds=30)
    assert "name must be 1 to 100" in str(info.value)
    assert "wait_seconds must be 0 to 20" in str(info.value)


def test_worker_refuses_bad_queue_names_and_urls_at_once() -> None:
    # They were accepted, and every lease call was then refused (422) and retried for ever.
    with pytest.raises(ValueError, match="queue names are 1 to 100") as info:
        Worker("not a url", queues=["bad queue!"])
    assert "url must start with http:// or https://" in str(info.value)


def test_worker_module_imports_only_stdlib_httpx_and_the_client() -> None:
    imported: set[str] = set()
    modules = sorted(Path(_worker.__file__).parent.glob("_worker*.py"))
    assert len(modules) > 1  # _worker.py and the private modules it is made of
    nodes = [node for module in modules for node in ast.walk(ast.parse(module.read_text()))]
    for node in nodes:
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
    allowed = set(sys.stdlib_module_names) | {"httpx", "__future__"}
    foreign = {
        name
        for name in imported
        if name.split(".")[0] not in allowed and not name.startswith("jobqueue.client")
    }
    assert foreign == set()
