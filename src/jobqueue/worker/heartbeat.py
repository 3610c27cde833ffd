"""Heartbeat: one statement extends the leases of every attempt this process holds.

It beats every third of the lease, so two beats can fail before a lease runs out. What it
learns goes back to the pool: lost leases (the attempt is stopped at once and its slot freed)
and cancel requests (the safety net for a cancel NOTIFY missed while LISTEN was down).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from jobqueue.errors import DatabaseUnavailable
from jobqueue.jobs import AttemptKey
from jobqueue.leases import HeartbeatResult, LeaseStore

log = structlog.get_logger(__name__)


class Heartbeat:
    """Beats for the attempts ``held()`` returns.

    Args:
        store: the lease use cases.
        held: the attempts to extend (the coordinator's ``held_keys``).
        lease_seconds: the lease each beat gives, in seconds.
        on_result: gets each beat's :class:`HeartbeatResult`.
        on_tick: called at every beat before the statement, even when the database is away
            (the pool abandons attempts that ignore being stopped).
    """

    def __init__(
        self,
        store: LeaseStore,
        held: Callable[[], list[AttemptKey]],
        lease_seconds: float,
        on_result: Callable[[HeartbeatResult], None],
        on_tick: Callable[[], object] = lambda: None,
    ) -> None:
        self.store = store
        self.held = held
        self.lease_seconds = lease_seconds
        self.on_result = on_result
        self.on_tick = on_tick

    async def beat(self) -> HeartbeatResult:
        """Extend every held lease once and report the result.

        Raises:
            DatabaseUnavailable: nothing was extended.
        """
        result = await self.store.heartbeat(self.held(), self.lease_seconds)
        self.on_result(result)
        return result

    async def run(self) -> None:
        """Beat every ``lease_seconds / 3`` until cancelled; a database fault is logged and the
        next beat tried on time. Anything else propagates (the supervisor restarts the loop)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            self.on_tick()
            try:
                await self.beat()
            except DatabaseUnavailable as exc:
                log.warning("heartbeat_failed", error=str(exc), held=len(self.held()))
