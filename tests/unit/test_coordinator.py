"""The claim coordinator against an in-memory lease store (no PostgreSQL): slots, one round
trip per round, no lost wake-up, attempt-keyed state through a self-rescue."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from jobqueue import leases
from jobqueue.backoff import RetryPolicy
from jobqueue.errors import DatabaseUnavailable, OutcomeRejected
from jobqueue.jobs import ClaimedJob, JobStatus, Outcome
from jobqueue.leases import ClaimSpec, FinishResult
from jobqueue.metrics import Metrics
from jobqueue.worker.coordinator import Coordinator, CoordinatorConfig
from tests.fakes import FakeClock, InMemoryLeases
from tests.helpers import wait_until

POLICY = RetryPolicy(0.0, 0.0)


def _coordinator(
    store: InMemoryLeases, slots: int = 3, poll: float = 3600.0, tasks: tuple[str, ...] = ("t",)
) -> Coordinator:
    config = CoordinatorConfig(
        queues={"default": slots}, tasks=tasks, lease_seconds=30.0, poll_interval_seconds=poll
    )
    return Coordinator(store, config, Metrics(), clock=store.clock)


def _taken(coordinator: Coordinator) -> list[ClaimedJob]:
    jobs: list[ClaimedJob] = []
    while not coordinator.ready.empty():
        jobs.append(coordinator.ready.get_nowait())
    return jobs


def _done(job: ClaimedJob) -> Outcome:
    return leases.succeeded(job, job.attempt, POLICY)


def _lost(coordinator: Coordinator) -> float:
    value: float = coordinator.metrics.leases_lost.labels("default", "t")._value.get()
    return value


async def test_coordinator_claims_at_most_the_free_slots() -> None:
    store = InMemoryLeases()
    for _ in range(5):
        store.add()
    coordinator = _coordinator(store, slots=3)
    await coordinator.round()
    assert [job.id for job in _taken(coordinator)] == [1, 2, 3]
    assert coordinator.busy == {"default": 3}
    await coordinator.round()  # no free slot: nothing to claim, nothing to write
    assert store.calls == ["claim"]


async def test_coordinator_writes_outcomes_and_claims_in_one_statement() -> None:
    store = InMemoryLeases()
    for _ in range(4):
        store.add()
    coordinator = _coordinator(store, slots=3)
    await coordinator.round()
    first, *_ = _taken(coordinator)
    coordinator.deliver(first, _done(first))
    await coordinator.round()
    assert store.calls == ["claim", "finish+claim"]
    assert [job.id for job in _taken(coordinator)] == [4]
    assert store.rows[1].status is JobStatus.DONE
    assert coordinator.held_keys() == [(2, 1), (3, 1), (4, 1)]


async def test_coordinator_claims_only_the_tasks_it_has() -> None:
    store = InMemoryLeases()
    store.add(task="new")
    store.add(task="t")
    coordinator = _coordinator(store, tasks=("t",))
    await coordinator.round()
    assert [job.task for job in _taken(coordinator)] == ["t"]
    assert (store.rows[1].status, store.rows[1].attempts) == (JobStatus.TODO, 0)


async def test_coordinator_wake_during_an_empty_claim_claims_again() -> None:
    store = InMemoryLeases()
    store.gate = asyncio.Event()
    coordinator = _coordinator(store, poll=3600.0)
    loop = asyncio.create_task(coordinator.run())
    try:
        await asyncio.wait_for(store.in_flight.wait(), 5)
        # A job is enqueued while the (empty) claim is in flight: its statement cannot see it.
        store.add()
        coordinator.wake(["default"])
        store.gate.set()

        async def claimed() -> bool:
            return store.rows[1].status is JobStatus.IN_PROGRESS

        await wait_until(claimed, 5, "the job enqueued during the claim is claimed")
        assert store.calls == ["claim", "claim"]
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_coordinator_empty_claim_does_not_claim_again_until_woken() -> None:
    store = InMemoryLeases()
    coordinator = _coordinator(store)
    await coordinator.round()
    assert coordinator.wanted == frozenset()
    coordinator.wake(None)
    assert coordinator.wanted == {"default"}


async def test_coordinator_full_claim_keeps_the_queue_wanted() -> None:
    store = InMemoryLeases()
    for _ in range(6):
        store.add()
    coordinator = _coordinator(store, slots=3)
    await coordinator.round()
    assert coordinator.wanted == {"default"}


async def test_coordinator_retry_delay_wakes_the_queue_when_due() -> None:
    clock = FakeClock()
    store = InMemoryLeases(clock=clock)
    store.add()
    coordinator = _coordinator(store)
    await coordinator.round()
    (job,) = _taken(coordinator)
    coordinator.deliver(job, Outcome(job.id, job.attempt, JobStatus.TODO, retry_delay_seconds=5))
    await coordinator.round()
    assert (store.rows[1].status, coordinator.wanted) == (JobStatus.TODO, frozenset())
    clock.advance(4.9)
    coordinator._fire_timers()
    assert coordinator.wanted == frozenset()
    clock.advance(0.1)
    coordinator._fire_timers()
    assert coordinator.wanted == {"default"}


async def test_coordinator_self_rescue_stale_outcome_is_refused_and_counted() -> None:
    clock = FakeClock()
    store = InMemoryLeases("w1", clock)
    store.add()
    coordinator = _coordinator(store)
    await coordinator.round()
    (stale,) = _taken(coordinator)
    # The event loop stalls past the lease: the job is rescued and this process claims it again.
    clock.advance(31)
    assert [r.job_id for r in store.rescue()] == [1]
    coordinator.wake(["default"])
    await coordinator.round()
    (current,) = _taken(coordinator)
    assert (stale.key, current.key) == ((1, 1), (1, 2))
    assert coordinator.held_keys() == [(1, 1), (1, 2)]
    # The stale attempt ends first; then the current one. Neither touches the other's state.
    coordinator.deliver(stale, _done(stale))
    coordinator.deliver(current, _done(current))
    await coordinator.round()
    assert (store.rows[1].status, store.rows[1].result) == (JobStatus.DONE, "2")
    assert coordinator.held_keys() == []
    assert coordinator.busy == {"default": 0}
    assert _lost(coordinator) == 1


async def test_coordinator_lost_lease_drops_the_stopped_attempts_outcome() -> None:
    store = InMemoryLeases()
    store.add()
    coordinator = _coordinator(store)
    await coordinator.round()
    (job,) = _taken(coordinator)
    assert coordinator.lose([job.key]) == [job]
    coordinator.deliver(job, leases.cancelled(job))
    assert (coordinator.pending, coordinator.held_keys()) == ([], [])
    assert coordinator.busy == {"default": 0}
    assert _lost(coordinator) == 1


async def test_coordinator_lost_lease_keeps_a_buffered_outcome_for_the_fence() -> None:
    store = InMemoryLeases()
    store.add()
    coordinator = _coordinator(store)
    await coordinator.round()
    (job,) = _taken(coordinator)
    coordinator.deliver(job, _done(job))
    assert coordinator.lose([job.key]) == []
    await coordinator.round()
    assert store.rows[1].status is JobStatus.DONE


async def test_coordinator_database_down_keeps_outcomes_and_wanted_queue() -> None:
    store = InMemoryLeases()
    store.add()
    coordinator = _coordinator(store)
    await coordinator.round()
    (job,) = _taken(coordinator)
    coordinator.deliver(job, _done(job))
    coordinator.wake(["default"])

    async def down(outcomes: object, claim_spec: ClaimSpec | None) -> FinishResult:
        raise DatabaseUnavailable("down")

    store.finish = down  # type: ignore[method-assign]
    with pytest.raises(DatabaseUnavailable):
        await coordinator.round()
    assert [o.key for o in coordinator.pending] == [(1, 1)]
    assert coordinator.wanted == {"default"}
    assert coordinator.held_keys() == [(1, 1)]


async def test_coordinator_shutdown_none_outcome_keeps_the_lease_for_release() -> None:
    store = InMemoryLeases()
    store.add()
    coordinator = _coordinator(store)
    await coordinator.round()
    (job,) = _taken(coordinator)
    coordinator.deliver(job, None)
    assert coordinator.held_keys() == [(1, 1)]
    assert coordinator.idle.is_set()
    assert await store.release(coordinator.held_keys()) == {(1, 1)}
    assert (store.rows[1].status, store.rows[1].attempts) == (JobStatus.TODO, 0)


async def test_coordinator_outcome_the_database_refuses_holds_back_no_other() -> None:
    store = InMemoryLeases()
    for _ in range(3):
        store.add()
    coordinator = _coordinator(store)
    await coordinator.round()
    jobs = _taken(coordinator)
    real_finish = store.finish

    async def refusing(outcomes: Sequence[Outcome], claim_spec: ClaimSpec | None) -> FinishResult:
        if any(o.result_json == '"poison"' for o in outcomes):
            raise OutcomeRejected("DataError: surrogates not allowed")
        return await real_finish(outcomes, claim_spec)

    store.finish = refusing  # type: ignore[method-assign]
    coordinator.deliver(jobs[0], _done(jobs[0]))
    poisoned = Outcome(jobs[1].id, 1, JobStatus.DONE, result_json='"poison"')
    coordinator.deliver(jobs[1], poisoned)
    coordinator.deliver(jobs[2], _done(jobs[2]))
    await coordinator.round()
    assert [store.rows[i].status for i in (1, 2, 3)] == [
        JobStatus.DONE,
        JobStatus.FAILED,
        JobStatus.DONE,
    ]
    assert store.rows[2].error is not None
    assert store.rows[2].error.startswith("the database refused this attempt's outcome")
    assert (coordinator.pending, coordinator.held_keys()) == ([], [])


async def test_coordinator_outcome_refused_twice_is_dropped_and_its_lease_left() -> None:
    store = InMemoryLeases()
    store.add()
    coordinator = _coordinator(store)
    await coordinator.round()
    (job,) = _taken(coordinator)

    async def refusing(outcomes: Sequence[Outcome], claim_spec: ClaimSpec | None) -> FinishResult:
        raise OutcomeRejected("DataError")

    store.finish = refusing  # type: ignore[method-assign]
    coordinator.deliver(job, _done(job))
    await coordinator.round()
    assert (coordinator.pending, coordinator.held_keys()) == ([], [])
    assert store.rows[1].status is JobStatus.IN_PROGRESS  # the rescuer takes it from here
