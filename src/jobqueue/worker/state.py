"""What one process holds: the jobs it claimed and has not yet written, and its busy slots."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from jobqueue.jobs import ClaimedJob


@dataclass
class Holdings:
    """Jobs this process holds a lease on, and how many runner slots are taken.

    A job enters at claim and leaves when the completer has written its outcome or shutdown has
    released it; the heartbeat extends the leases of everything here. ``busy`` counts jobs
    queued or running (not those only waiting for the completer), so it sizes the next claim.
    """

    concurrency: int
    jobs: dict[int, ClaimedJob] = field(default_factory=dict)
    busy: int = 0
    slot_freed: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def free_slots(self) -> int:
        """Runner slots with no job, 0 to ``concurrency``."""
        return max(self.concurrency - self.busy, 0)

    def take(self, job: ClaimedJob) -> None:
        """Record a claimed job: it holds a slot and a lease."""
        self.jobs[job.id] = job
        self.busy += 1
        self.idle.clear()

    def free(self) -> None:
        """A runner finished (or dropped) a job: give its slot back."""
        self.busy -= 1
        self.slot_freed.set()
        if self.busy == 0:
            self.idle.set()

    def forget(self, job_id: int) -> None:
        """The job's outcome is written (or it was released): the lease is no longer ours."""
        self.jobs.pop(job_id, None)
