"""Long-poll waiters (standard library only): requests waiting for jobs to finish, woken by
"finished" notifications; lease requests waiting for jobs on their queues."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping

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


MAX_DUE_TIMERS = 1000
"""The most "due later" timers kept at once; a later due time is then found by the poll tick
(bounds memory when many delayed jobs are enqueued)."""


class QueueWaiters:
    """Events of requests waiting for jobs on some queues (the lease API's long-polls), set
    when a queue may have a due job: a local enqueue, a NOTIFY from another process, a rescue,
    a timer at a delayed job's due time, or the poll tick's probe.

    The count is kept per owner (an API key's name) so that the caller can cap the waits of
    each key.
    """

    def __init__(self) -> None:
        self._events: dict[asyncio.Event, frozenset[str]] = {}
        self._owners: dict[str, int] = {}
        self._timers = 0

    def __len__(self) -> int:
        """How many requests wait right now."""
        return len(self._events)

    def waiting(self, owner: str) -> int:
        """How many requests of ``owner`` wait right now."""
        return self._owners.get(owner, 0)

    def queues(self) -> frozenset[str]:
        """Every queue some request waits on."""
        return frozenset().union(*self._events.values()) if self._events else frozenset()

    @contextlib.contextmanager
    def watch(self, owner: str, queues: frozenset[str]) -> Iterator[asyncio.Event]:
        """An event set whenever one of ``queues`` may have a due job; register before the
        first claim, so that an enqueue between the claim and the wait is not missed."""
        event = asyncio.Event()
        self._events[event] = queues
        self._owners[owner] = self._owners.get(owner, 0) + 1
        try:
            yield event
        finally:
            del self._events[event]
            left = self._owners[owner] - 1
            if left:
                self._owners[owner] = left
            else:
                del self._owners[owner]

    def runnable(self, queues: frozenset[str] | None) -> None:
        """Wake the waiters of ``queues`` (None: every waiter)."""
        for event, watched in self._events.items():
            if queues is None or not watched.isdisjoint(queues):
                event.set()

    def due(self, due_in: Mapping[str, float]) -> None:
        """Jobs were enqueued: ``{queue: seconds until the earliest is due}`` (0: now). Due
        now wakes at once; due later sets a timer (at most :data:`MAX_DUE_TIMERS`)."""
        if not self._events:  # every enqueue calls this: nothing to do while nobody waits
            return
        now = frozenset(queue for queue, seconds in due_in.items() if seconds <= 0)
        if now:
            self.runnable(now)
        later = {queue: seconds for queue, seconds in due_in.items() if seconds > 0}
        if not later:
            return
        loop = asyncio.get_running_loop()
        for queue, seconds in later.items():
            if self._timers >= MAX_DUE_TIMERS:
                return
            self._timers += 1
            loop.call_later(seconds, self._fire, queue)

    def _fire(self, queue: str) -> None:
        self._timers -= 1
        self.runnable(frozenset((queue,)))

    def wake_all(self) -> None:
        """Wake every waiter (after a LISTEN reconnect, or when the service stops)."""
        self.runnable(None)
