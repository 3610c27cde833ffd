"""The tasks and queues that live processes announce (the process registry), for enqueue.

A job may name a task this process has, one of ``JOBQUEUE_REMOTE_TASKS``, or one that any live
process announced (remote workers announce theirs through their lease calls); likewise a queue.
On a queue of ``JOBQUEUE_REMOTE_QUEUES``, or one a live remote worker leases from without naming
tasks, any task is accepted. The registry loop refreshes the catalog every 10 s
(``maintenance/registry.py``); a name that misses makes the enqueue read the registry once more
(at most once per ``min_refresh_seconds`` in the process, whoever asks, so a client sending
unknown names costs one small read a second at most) and try again: a job for a task that a
worker started a moment ago is accepted at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

LiveReader = Callable[[], Awaitable[tuple[frozenset[str], frozenset[str], frozenset[str]]]]
"""Reads ``(tasks, queues, open queues)`` of the live processes from the registry."""


@dataclass(frozen=True, slots=True)
class LiveNames:
    """Tasks and queues the live processes announced.

    Attributes:
        tasks: tasks some live process runs.
        queues: queues some live process serves.
        open_queues: queues whose every task some live process takes (a remote worker that
            leases without naming tasks): a job of any task may go there.
    """

    tasks: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    open_queues: frozenset[str] = frozenset()


class Catalog:
    """The live processes' task and queue names, refreshed by the registry loop and on a miss.

    Args:
        reader: reads the registry (None: only :meth:`update` changes the names).
        min_refresh_seconds: the shortest time between two reads on a miss, in seconds.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        reader: LiveReader | None = None,
        min_refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.live = LiveNames()
        self.reader = reader
        self.min_refresh_seconds = min_refresh_seconds
        self.clock = clock
        self._read_at = float("-inf")
        self._invalidated_at = float("-inf")
        self._lock = asyncio.Lock()

    def update(
        self,
        tasks: frozenset[str],
        queues: frozenset[str],
        open_queues: frozenset[str] = frozenset(),
    ) -> None:
        """Replace the names (the registry loop's call after each renewal). It counts as a
        fresh read, unless :meth:`invalidate` was called less than ``min_refresh_seconds`` ago:
        the loop's read may have started before the announcement that invalidated it."""
        self.live = LiveNames(tasks, queues, open_queues)
        if self.clock() - self._invalidated_at >= self.min_refresh_seconds:
            self._read_at = self.clock()

    def invalidate(self) -> None:
        """Let the next miss read the registry at once (a remote worker announced new names
        through this process: a job of its task must not wait for the next renewal)."""
        self._read_at = float("-inf")
        self._invalidated_at = self.clock()

    async def refresh(self) -> bool:
        """Read the registry again unless it was read less than ``min_refresh_seconds`` ago.

        Returns:
            True when the names were read now (a caller that missed may try again).

        Raises:
            DatabaseUnavailable: the registry could not be read.
        """
        if self.reader is None:
            return False
        async with self._lock:
            if self.clock() - self._read_at < self.min_refresh_seconds:
                return False
            self._read_at = self.clock()
            self.update(*await self.reader())
            return True

    async def retry(self, build: Callable[[], T], error: Exception) -> T:
        """``build()`` again after reading the registry, for a check that failed with
        ``error`` because it named a task or queue nobody announced.

        Raises:
            ``error``: the catalog allows no read now (:meth:`refresh` returned False); or
            what ``build`` raises on its second try. DatabaseUnavailable.
        """
        if not await self.refresh():
            raise error
        return build()
