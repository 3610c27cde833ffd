"""What one process holds: the jobs it claimed and has not yet written, and its busy slots."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from jobqueue.jobs import ClaimedJob


@dataclass
class Holdings:
    """Jobs this process holds a lease on, and how each queue's runner slots are used.

    A job enters at claim and leaves when the completer has written its outcome or shutdown has
    released it; the heartbeat extends the leases of everything here. Per queue, ``busy``
    counts jobs queued or running (not those only waiting for the completer) and ``reserved``
    the slots held for claims in flight, so that two claims (the dispatcher's and the
    completer's) never ask for the same slot and a queue never holds more than its limit.

    Args:
        limits: slots per queue, e.g. ``{"default": 10, "emails": 2}``.
        on_queue_unblocked: called when a queue that had no free slot gets one.
    """

    limits: dict[str, int]
    on_queue_unblocked: Callable[[], None] = lambda: None
    jobs: dict[int, ClaimedJob] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, int] = field(default_factory=dict)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.busy = dict.fromkeys(self.limits, 0)
        self.reserved = dict.fromkeys(self.limits, 0)
        self.idle.set()

    @property
    def total_busy(self) -> int:
        """Jobs queued or running, all queues together."""
        return sum(self.busy.values())

    def free_slots(self, queue: str) -> int:
        """Slots of ``queue`` neither busy nor reserved, 0 to ``limits[queue]``."""
        return max(self.limits[queue] - self.busy[queue] - self.reserved[queue], 0)

    def any_free(self) -> bool:
        """True when some queue has a free slot."""
        return any(self.free_slots(queue) for queue in self.limits)

    def reserve(self, queue: str, slots: int) -> None:
        """Hold ``slots`` of ``queue`` for a claim in flight."""
        self.reserved[queue] += slots

    def unreserve(self, queue: str, slots: int) -> None:
        """Give back reserved slots that a claim did not fill.

        This never calls ``on_queue_unblocked``: a claim that came back short found no more due
        jobs, so waking the dispatcher for these slots would only claim nothing again (an idle
        process would spin on the claim). New work wakes it through NOTIFY or the poll.
        """
        self.reserved[queue] -= slots

    def take(self, job: ClaimedJob) -> None:
        """Record a claimed job in a slot reserved for it: it is busy and holds a lease."""
        self.jobs[job.id] = job
        self.reserved[job.queue] -= 1
        self.busy[job.queue] += 1
        self.idle.clear()

    def free(self, job: ClaimedJob) -> None:
        """A runner finished (or dropped) ``job``: give its slot back."""
        was_full = self.free_slots(job.queue) == 0
        self.busy[job.queue] -= 1
        if was_full:
            self.on_queue_unblocked()
        if self.total_busy == 0:
            self.idle.set()

    def forget(self, job_id: int) -> None:
        """The job's outcome is written (or it was released): the lease is no longer ours."""
        self.jobs.pop(job_id, None)
