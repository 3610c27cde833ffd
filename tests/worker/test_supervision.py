"""Every background loop runs under the supervisor: a loop that raises is restarted and
counted, ``/readyz`` names it while it is down, and the pool keeps running jobs after."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobqueue import leases
from jobqueue.db import registry
from jobqueue.maintenance.supervisor import Supervisor
from tests.conftest import AppClient, AppFactory
from tests.helpers import wait_for_status, wait_until


class Fault:
    """An injected error that stays until cleared."""

    def __init__(self) -> None:
        self.active = True
        self.raised = 0

    def check(self) -> None:
        if self.active:
            self.raised += 1
            raise RuntimeError("injected fault")


def _inject_module(loop: str, fault: Fault, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the rescuer or the registry raise ``fault`` (patched before the app starts: the
    registry announces at start, then every 10 s)."""
    if loop == "rescuer":
        real_rescue = leases.rescue

        async def failing_rescue(*args: Any) -> Any:
            fault.check()
            return await real_rescue(*args)

        monkeypatch.setattr(leases, "rescue", failing_rescue)
    elif loop == "registry":
        real_announce = registry.announce_process

        async def failing_announce(*args: Any) -> Any:
            fault.check()
            return await real_announce(*args)

        monkeypatch.setattr(registry, "announce_process", failing_announce)


def _inject(
    client: AppClient, loop: str, fault: Fault, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], None]:
    """Make a pool loop raise ``fault`` where it does its work; returns a kick that makes it
    run now."""
    pool = client.pool
    if loop == "claim":
        real_round = pool.coordinator.round

        async def failing_round() -> None:
            fault.check()
            await real_round()

        monkeypatch.setattr(pool.coordinator, "round", failing_round)
        return lambda: pool.coordinator.wake(None)
    if loop == "heartbeat":
        real_beat = pool.heartbeat.beat

        async def failing_beat() -> Any:
            fault.check()
            return await real_beat()

        monkeypatch.setattr(pool.heartbeat, "beat", failing_beat)
        return lambda: None
    if loop == "runner-0":
        real_get = pool.coordinator.ready.get

        async def failing_get() -> Any:
            fault.check()
            return await real_get()

        monkeypatch.setattr(pool.coordinator.ready, "get", failing_get)
        return lambda: None
    raise AssertionError(loop)


def _restarts(text: str, loop: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "jobqueue_loop_restarts_total" and sample.labels["loop"] == loop:
                return sample.value
    return 0.0


@pytest.mark.parametrize("loop", ["claim", "heartbeat", "runner-0", "rescuer", "registry"])
async def test_supervisor_loop_that_raises_is_restarted_counted_and_reported(
    start_app: AppFactory, monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    fault = Fault()
    _inject_module(loop, fault, monkeypatch)
    client = await start_app(lease_seconds=1.0, rescue_interval_seconds=0.1, concurrency=1)
    supervisor = client.runtime.loops
    assert isinstance(supervisor, Supervisor)
    supervisor.restart_max_seconds = 0.5
    if loop not in ("rescuer", "registry"):
        _inject(client, loop, fault, monkeypatch)()
    if loop == "runner-0":
        # The runner waits in ready.get() already: one job brings it back to the faulty get.
        first = (await client.post("/jobs", json={"task": "count"})).json()
        assert (await wait_for_status(client, first["id"], {"done"}, timeout=10))["attempts"] == 1

    async def reported_down() -> bool:
        response = await client.get("/readyz")
        return response.status_code == 503 and loop in response.json()["checks"]["loops"]

    await wait_until(reported_down, 15, f"/readyz naming {loop} as down")
    fault.active = False

    async def recovered() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await wait_until(recovered, 15, "/readyz 200 after the fault is cleared")
    assert fault.raised >= 1
    assert _restarts((await client.get("/metrics")).text, loop) == fault.raised
    job = (await client.post("/jobs", json={"task": "count"})).json()
    assert (await wait_for_status(client, job["id"], {"done"}, timeout=10))["attempts"] == 1


async def test_supervisor_listen_loop_that_raises_is_restarted_and_reported(
    start_app: AppFactory, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await start_app()
    listener = client.runtime.listener
    assert listener is not None
    supervisor = client.runtime.loops
    assert isinstance(supervisor, Supervisor)
    supervisor.restart_max_seconds = 0.5
    fault = Fault()
    real_listen = listener._listen

    async def failing_listen(conn: asyncpg.Connection) -> None:
        fault.check()
        await real_listen(conn)

    monkeypatch.setattr(listener, "_listen", failing_listen)
    # Drop the LISTEN connection: the loop reconnects and meets the fault.
    await db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'jobqueue-listen'"
    )

    async def reported_down() -> bool:
        response = await client.get("/readyz")
        checks = response.json()["checks"]
        return response.status_code == 503 and "listen" in checks["loops"]

    await wait_until(reported_down, 15, "/readyz naming listen as down")
    fault.active = False

    async def recovered() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await wait_until(recovered, 15, "/readyz 200 after the fault is cleared")
    assert _restarts((await client.get("/metrics")).text, "listen") == fault.raised


async def test_supervisor_loop_failing_longer_than_allowed_fails_healthz(
    start_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await start_app(unhealthy_after_seconds=0.5)
    supervisor = client.runtime.loops
    assert isinstance(supervisor, Supervisor)
    supervisor.restart_max_seconds = 0.2
    fault = Fault()
    _inject(client, "claim", fault, monkeypatch)()

    async def unhealthy() -> bool:
        return (await client.get("/healthz")).status_code == 503

    await wait_until(unhealthy, 15, "/healthz 503 while the claim loop keeps failing")
    body = (await client.get("/healthz")).json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"loop:claim": "failing: restart the process"}
    fault.active = False

    async def healthy() -> bool:
        return (await client.get("/healthz")).status_code == 200

    supervisor.stable_seconds = 0.3
    await wait_until(healthy, 15, "/healthz 200 once the loop runs again")
