"""Scheduler: fires due schedules (periodic jobs) every ``tick_seconds``.

Every process with workers runs it; a round takes an advisory lock, and each slot's job has an
idempotency key, so however many processes run it, a slot creates one job
(``service/_schedules.py`` has the rules: one job per slot, at most one catch-up after
downtime).
"""

from __future__ import annotations

import asyncio

import structlog

from jobqueue.errors import DatabaseUnavailable
from jobqueue.service import Schedules

log = structlog.get_logger("jobqueue.scheduler")

TICK_SECONDS = 1.0
"""How often the scheduler looks for due schedules, in seconds: a slot's job is created at
most this long after the slot."""


class Scheduler:
    """Fires due schedules every ``tick_seconds``.

    Args:
        schedules: the schedule use cases.
        tick_seconds: the period, in seconds.
    """

    def __init__(self, schedules: Schedules, tick_seconds: float = TICK_SECONDS) -> None:
        self.schedules = schedules
        self.tick_seconds = tick_seconds

    async def run(self) -> None:
        """Fire due schedules every ``tick_seconds`` until cancelled; a database fault is
        logged and the next round tried on time. Anything else propagates (the supervisor
        restarts it)."""
        while True:
            try:
                await self.schedules.fire_due()
            except DatabaseUnavailable as exc:
                log.warning("schedule_round_failed", error=str(exc))
            await asyncio.sleep(self.tick_seconds)
