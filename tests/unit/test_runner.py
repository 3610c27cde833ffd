"""The runner and the sync-task threads (no database): each attempt keyed by (job, attempt),
delivered exactly once, stopped one at a time; plain functions on threads of their own."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest

from jobqueue.backoff import RetryPolicy
from jobqueue.jobs import ClaimedJob, JobStatus, Outcome
from jobqueue.tasks.registry import JobContext, TaskRegistry
from jobqueue.worker.runner import Runner
from jobqueue.worker.threads import SyncThreads, ThreadTimeout
from tests.helpers import wait_until

POLICY = RetryPolicy(0.0, 0.0)


class Deliveries:
    """What the runner handed back, in order."""

    def __init__(self) -> None:
        self.items: list[tuple[tuple[int, int], JobStatus | None]] = []
        self.changed = asyncio.Event()

    def __call__(self, job: ClaimedJob, outcome: Outcome | None) -> None:
        self.items.append((job.key, None if outcome is None else outcome.status))
        self.changed.set()


@pytest.fixture
async def threads() -> AsyncIterator[SyncThreads]:
    pool = SyncThreads(4)
    yield pool
    pool.close()


def _registry(started: asyncio.Event) -> TaskRegistry:
    registry = TaskRegistry()

    async def wait(ctx: JobContext) -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    async def quick(ctx: JobContext) -> int:
        return ctx.attempt

    registry.register("wait", wait)
    registry.register("quick", quick)
    return registry


def _job(job_id: int, attempt: int, task: str, timeout: float = 300.0) -> ClaimedJob:
    return ClaimedJob(job_id, "default", task, {}, attempt, 3, timeout)


def _runner(registry: TaskRegistry, threads: SyncThreads, deliver: Deliveries) -> Runner:
    ready: asyncio.Queue[ClaimedJob] = asyncio.Queue()
    return Runner(ready=ready, registry=registry, deliver=deliver, policy=POLICY, threads=threads)


async def test_runner_two_attempts_of_one_job_are_kept_apart(threads: SyncThreads) -> None:
    started = asyncio.Event()
    deliveries = Deliveries()
    runner = _runner(_registry(started), threads, deliveries)
    stale = asyncio.create_task(runner.run_one(_job(7, 1, "wait")))
    await asyncio.wait_for(started.wait(), 5)
    current = asyncio.create_task(runner.run_one(_job(7, 2, "wait")))

    async def both_running() -> bool:
        return set(runner.running) == {(7, 1), (7, 2)}

    await wait_until(both_running, 5, "two attempts of job 7 running")
    assert runner.running_keys(7) == [(7, 1), (7, 2)]
    assert runner.cancel((7, 1)) is True  # the lost stale attempt is stopped: only it
    await stale
    assert deliveries.items == [((7, 1), JobStatus.CANCELLED)]
    assert set(runner.running) == {(7, 2)}
    runner.cancel((7, 2))
    await current
    assert deliveries.items == [((7, 1), JobStatus.CANCELLED), ((7, 2), JobStatus.CANCELLED)]
    assert runner.running == {}


async def test_runner_cancel_before_start_ends_the_attempt_at_start(
    threads: SyncThreads,
) -> None:
    deliveries = Deliveries()
    runner = _runner(_registry(asyncio.Event()), threads, deliveries)
    assert runner.cancel((3, 1)) is False
    await runner.run_one(_job(3, 1, "quick"))
    await runner.run_one(_job(3, 2, "quick"))  # another attempt of the job is not affected
    assert deliveries.items == [((3, 1), JobStatus.CANCELLED), ((3, 2), JobStatus.DONE)]


async def test_runner_abort_delivers_none_so_the_job_is_released(threads: SyncThreads) -> None:
    started = asyncio.Event()
    deliveries = Deliveries()
    runner = _runner(_registry(started), threads, deliveries)
    attempt = asyncio.create_task(runner.run_one(_job(1, 1, "wait")))
    await asyncio.wait_for(started.wait(), 5)
    runner.abort()
    await attempt
    assert deliveries.items == [((1, 1), None)]


async def test_runner_cancelled_runner_still_delivers_exactly_once(threads: SyncThreads) -> None:
    started = asyncio.Event()
    deliveries = Deliveries()
    runner = _runner(_registry(started), threads, deliveries)
    attempt = asyncio.create_task(runner.run_one(_job(1, 1, "wait")))
    await asyncio.wait_for(started.wait(), 5)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert deliveries.items == [((1, 1), None)]


async def test_sync_threads_run_size_functions_at_once() -> None:
    pool = SyncThreads(8)
    running = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def work(_: object) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(10)
        with lock:
            running -= 1

    try:
        calls = [asyncio.create_task(pool.run(work, None, 30)) for _ in range(8)]

        async def all_started() -> bool:
            return most == 8

        await wait_until(all_started, 5, "8 functions running at once")
        release.set()
        await asyncio.gather(*calls)
    finally:
        pool.close()
    assert most == 8


async def test_sync_threads_timeout_abandons_the_function_and_keeps_capacity() -> None:
    pool = SyncThreads(2)
    hang = threading.Event()
    try:
        for _ in range(6):
            with pytest.raises(ThreadTimeout):
                await pool.run(lambda _: hang.wait(30), None, 0.05)
        assert pool.abandoned == 6
        # Six hung functions hold six threads; two slots' worth of threads are still free.
        started = time.monotonic()
        assert await pool.run(lambda value: value * 2, 21, 1.0) == 42
        assert time.monotonic() - started < 1.0
        assert pool.threads >= 7
    finally:
        hang.set()
        pool.close()

    async def drained() -> bool:
        return pool.abandoned == 0

    await wait_until(drained, 5, "abandoned functions returned")


async def test_sync_threads_timeout_counts_from_the_start_in_a_thread() -> None:
    pool = SyncThreads(1)
    release = threading.Event()
    try:
        first = asyncio.create_task(pool.run(lambda _: release.wait(5), None, 30))
        # The second waits for the only thread longer than its own timeout: not a timeout.
        second = asyncio.create_task(pool.run(lambda _: "ran", None, 0.2))
        await asyncio.sleep(0.4)
        release.set()
        assert await second == "ran"
        assert await first is True
    finally:
        pool.close()


async def test_sync_threads_exception_is_reraised_in_the_caller() -> None:
    pool = SyncThreads(1)

    def boom(_: object) -> None:
        raise SystemExit(3)

    try:
        with pytest.raises(SystemExit):
            await pool.run(boom, None, 5)
    finally:
        pool.close()
