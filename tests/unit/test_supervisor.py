"""The supervisor: restarts a loop that raises, with backoff, counts it, and says which loops
are down (readiness) and which keep failing (liveness)."""

from __future__ import annotations

import asyncio

from jobqueue.maintenance.supervisor import Supervisor
from jobqueue.metrics import Metrics
from tests.helpers import wait_until


def _restarts(metrics: Metrics, loop: str) -> float:
    value: float = metrics.loop_restarts.labels(loop)._value.get()
    return value


async def test_supervisor_restarts_a_failing_loop_until_it_runs() -> None:
    metrics = Metrics()
    supervisor = Supervisor(metrics, restart_base_seconds=0.01, restart_max_seconds=0.02)
    failures = 3
    running = asyncio.Event()

    async def flaky() -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ValueError("not yet")
        running.set()
        await asyncio.Event().wait()

    supervisor.add("flaky", flaky)
    await supervisor.start()
    try:
        await asyncio.wait_for(running.wait(), 5)
        assert _restarts(metrics, "flaky") == 3
        assert supervisor.states["flaky"].last_error == "ValueError('not yet')"
        assert supervisor.down() == {}
    finally:
        await supervisor.stop()


async def test_supervisor_reports_a_loop_down_while_it_waits_to_restart() -> None:
    supervisor = Supervisor(Metrics(), restart_base_seconds=30)

    async def broken() -> None:
        raise RuntimeError("boom")

    supervisor.add("broken", broken)
    await supervisor.start()
    try:

        async def down() -> bool:
            return "broken" in supervisor.down()

        await wait_until(down, 5, "the loop reported down")
        assert "RuntimeError('boom')" in supervisor.down()["broken"]
    finally:
        await supervisor.stop()
    assert supervisor.down() == {}


async def test_supervisor_failing_for_counts_from_the_first_failure_of_a_streak() -> None:
    now = [100.0]
    supervisor = Supervisor(
        Metrics(), restart_base_seconds=0.0, stable_seconds=30, clock=lambda: now[0]
    )
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    supervisor.add("broken", broken)
    await supervisor.start()
    try:

        async def failed_twice() -> bool:
            return calls >= 2

        await wait_until(failed_twice, 5, "two failures")
        assert supervisor.failing_for(10) == {}
        now[0] += 11
        assert list(supervisor.failing_for(10)) == ["broken"]
    finally:
        await supervisor.stop()


async def test_supervisor_returned_loop_counts_as_a_failure() -> None:
    metrics = Metrics()
    supervisor = Supervisor(metrics, restart_base_seconds=30)

    async def returns() -> None:
        return None

    supervisor.add("returns", returns)
    await supervisor.start()
    try:

        async def counted() -> bool:
            return _restarts(metrics, "returns") == 1

        await wait_until(counted, 5, "the return counted")
        assert "the loop returned" in supervisor.states["returns"].last_error
    finally:
        await supervisor.stop()
