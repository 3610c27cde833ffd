"""Slot accounting: reservations keep two claimers from asking for the same slot."""

from __future__ import annotations

from jobqueue.jobs import ClaimedJob
from jobqueue.worker.state import Holdings


def _job(job_id: int, queue: str = "default") -> ClaimedJob:
    return ClaimedJob(job_id, queue, "t", {}, 1, 3, 300.0)


def test_holdings_reserved_slots_are_not_free_and_not_busy() -> None:
    holdings = Holdings({"default": 5})
    holdings.reserve("default", 3)
    assert (holdings.free_slots("default"), holdings.total_busy) == (2, 0)
    holdings.take(_job(1))
    holdings.unreserve("default", 2)
    assert (holdings.free_slots("default"), holdings.total_busy) == (4, 1)
    assert list(holdings.jobs) == [1]


def test_holdings_full_queue_getting_a_slot_calls_unblocked_once() -> None:
    calls: list[str] = []
    holdings = Holdings({"default": 2, "emails": 1}, on_queue_unblocked=lambda: calls.append("x"))
    holdings.reserve("default", 2)
    holdings.take(_job(1))
    holdings.take(_job(2))
    holdings.free(_job(1))
    assert calls == ["x"]
    holdings.free(_job(2))  # the queue was no longer full
    assert calls == ["x"]
    assert holdings.idle.is_set()


def test_holdings_unreserve_never_calls_unblocked() -> None:
    # A short claim found no more due jobs: waking the dispatcher would spin on empty claims.
    calls: list[str] = []
    holdings = Holdings({"default": 2}, on_queue_unblocked=lambda: calls.append("x"))
    holdings.reserve("default", 2)
    holdings.unreserve("default", 2)
    assert (calls, holdings.free_slots("default")) == ([], 2)


def test_holdings_queues_are_independent() -> None:
    holdings = Holdings({"default": 2, "emails": 1})
    holdings.reserve("emails", 1)
    holdings.take(_job(1, "emails"))
    assert (holdings.free_slots("emails"), holdings.free_slots("default")) == (0, 2)
    assert holdings.any_free()
