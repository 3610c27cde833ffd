"""Long-poll waiters: requests waiting for jobs to finish, woken by "finished" notifications
(standard library only)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from jobqueue.notify.protocol import JobsFinished


class FinishWaiters:
    """Events per job id, set when a notification says the job reached a final status."""

    def __init__(self) -> None:
        self._events: dict[int, set[asyncio.Event]] = {}
        self._count = 0

    def __len__(self) -> int:
        """How many requests wait right now (kept as a count: the cap checks it per request)."""
        return self._count

    @contextlib.contextmanager
    def watch(self, job_id: int) -> Iterator[asyncio.Event]:
        """An event set whenever ``job_id`` may have finished; register before reading the
        job, so that a finish between the read and the wait is not missed."""
        event = asyncio.Event()
        self._events.setdefault(job_id, set()).add(event)
        self._count += 1
        try:
            yield event
        finally:
            self._count -= 1
            events = self._events.get(job_id, set())
            events.discard(event)
            if not events:
                self._events.pop(job_id, None)

    def finished(self, event: JobsFinished) -> None:
        """Wake the waiters of the jobs ``event`` names (all of them for "any job")."""
        if event.job_ids is None:
            self.wake_all()
            return
        for job_id in event.job_ids:
            for waiter in self._events.get(job_id, ()):
                waiter.set()

    def wake_all(self) -> None:
        """Wake every waiter (after a LISTEN reconnect: notifications may have been missed)."""
        for events in self._events.values():
            for event in events:
                event.set()
