"""Schedules (periodic jobs): define them, and fire the due ones.

A schedule names a cron expression and time zone (``service/_cron.py``) and the job to create
(task, payload, queue, priority). The job is checked like any enqueue when the schedule is
defined (unknown task or queue, payload size and depth, the task's payload validator: 422),
and created through the same enqueue path when a slot comes.

**One job per slot.** Each slot's job carries the idempotency key
``schedule:<name>:<slot in UTC, ISO 8601>``: two processes firing the same slot, or a process
that died after creating the job and before moving ``next_run_at``, create one job. A round
also takes an advisory lock, so that one process at a time does the work.

**After downtime, at most one catch-up job.** A round fires a due schedule once, for its most
recent slot at or before now (so a daily report missed during a two-day outage runs once, for
the latest day), then moves ``next_run_at`` to the first slot after now. The slots in between
are skipped and logged (``schedule_slots_skipped``). Never a burst.

A slot whose job cannot be created (its task or queue is no longer known, a payload the task's
new validator refuses) is skipped with a warning (``schedule_fire_failed``); the schedule
stays and fires again at its next slot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import schedules as rows
from jobqueue.db.engine import read, write
from jobqueue.errors import (
    IdempotencyConflict,
    InvalidJobRequest,
    ScheduleExists,
    ScheduleNotFound,
)
from jobqueue.jobs import NewJob
from jobqueue.service._cron import expression, last_run, next_run, zone
from jobqueue.service._enqueue import Created
from jobqueue.service._intake import JobRequest

log = structlog.get_logger("jobqueue.scheduler")

ScheduleRow = rows.ScheduleRow

FIRE_BATCH = 100
"""Due schedules one round fires at most (the rest in the next round, a second later)."""


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule's definition. ``name``: 1 to 100 of ``A-Za-z0-9_.:-``; ``cron``: five
    fields or a nickname; ``timezone``: an IANA name; the rest describes the job."""

    name: str
    cron: str
    task: str
    payload: dict[str, Any] | None = None
    queue: str = "default"
    priority: int = 0
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Fired:
    """One slot a round fired: the job it created (None when it could not be created)."""

    name: str
    slot: datetime
    job_id: int | None


def slot_key(name: str, slot: datetime) -> str:
    """The idempotency key of ``name``'s job for ``slot``."""
    return f"schedule:{name}:{slot.isoformat()}"


class Schedules:
    """The schedule use cases.

    Args:
        engine: the process's engine.
        prepare: checks a job request as an enqueue would (raises its errors).
        create_many: creates jobs as :meth:`JobService.create_many` does.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        prepare: Callable[[JobRequest], NewJob],
        create_many: Callable[[Sequence[JobRequest]], Awaitable[list[Created]]],
    ) -> None:
        self.engine = engine
        self.prepare = prepare
        self.create_many = create_many

    def _check(self, spec: ScheduleSpec) -> None:
        expression(spec.cron)
        zone(spec.timezone)
        self.prepare(
            JobRequest(
                task=spec.task, payload=spec.payload, queue=spec.queue, priority=spec.priority
            )
        )

    def _values(self, spec: ScheduleSpec, now: datetime, source: str) -> dict[str, Any]:
        return {
            "name": spec.name,
            "cron": spec.cron,
            "timezone": spec.timezone,
            "task": spec.task,
            "payload": spec.payload or {},
            "queue": spec.queue,
            "priority": spec.priority,
            "source": source,
            "next_run_at": next_run(spec.cron, spec.timezone, now),
        }

    async def list_all(self) -> list[ScheduleRow]:
        """Every schedule, by name. Raises: DatabaseUnavailable."""
        async with read(self.engine) as conn:
            return await rows.list_schedules(conn)

    async def get(self, name: str) -> ScheduleRow:
        """One schedule. Raises: ScheduleNotFound; DatabaseUnavailable."""
        async with read(self.engine) as conn:
            found = await rows.get_schedule(conn, name)
        if found is None:
            raise ScheduleNotFound(name)
        return found

    async def create(self, spec: ScheduleSpec) -> ScheduleRow:
        """Define a schedule; its first slot is the first after now.

        Raises:
            InvalidJobRequest: a bad cron, time zone, task, queue or payload (422), or
                :data:`~jobqueue.db.schedules.MAX_SCHEDULES` schedules exist already.
            ScheduleExists: the name is taken. DatabaseUnavailable.
        """
        self._check(spec)
        async with write(self.engine) as conn:
            if await rows.count_schedules(conn) >= rows.MAX_SCHEDULES:
                raise InvalidJobRequest(f"there are {rows.MAX_SCHEDULES} schedules already")
            now = await rows.database_now(conn)
            created = await rows.insert_schedule(conn, self._values(spec, now, "api"))
        if created is None:
            raise ScheduleExists(spec.name)
        return created

    async def sync(self, specs: Sequence[ScheduleSpec]) -> None:
        """Write the schedules of the settings (``JOBQUEUE_SCHEDULES``) at start: new ones are
        created, existing ones get the definition and keep their pause state and last run.

        Raises:
            InvalidJobRequest: a bad definition (the message names the schedule).
            DatabaseUnavailable.
        """
        for spec in specs:
            try:
                self._check(spec)
            except InvalidJobRequest as exc:
                raise InvalidJobRequest(f"schedule {spec.name!r}: {exc}") from exc
        async with write(self.engine) as conn:
            now = await rows.database_now(conn)
            for spec in specs:
                values = self._values(spec, now, "settings")
                await rows.insert_schedule(conn, values, replace=True)

    async def update(self, name: str, changes: dict[str, Any]) -> ScheduleRow:
        """Change some of cron, timezone, task, payload, queue, priority; a new cron or time
        zone moves the next slot to the first after now.

        Raises:
            ScheduleNotFound; InvalidJobRequest (the changed definition is checked whole);
            DatabaseUnavailable.
        """
        async with write(self.engine) as conn:
            current = await rows.get_schedule(conn, name, lock=True)
            if current is None:
                raise ScheduleNotFound(name)
            fields = ("cron", "task", "payload", "queue", "priority", "timezone")
            merged = {field: changes.get(field, getattr(current, field)) for field in fields}
            spec = ScheduleSpec(name=name, **merged)
            self._check(spec)
            values = {field: merged[field] for field in fields if field in changes}
            if "cron" in changes or "timezone" in changes:
                now = await rows.database_now(conn)
                values["next_run_at"] = next_run(spec.cron, spec.timezone, now)
            updated = await rows.update_schedule(conn, name, values)
        assert updated is not None  # locked above
        return updated

    async def delete(self, name: str) -> None:
        """Delete a schedule (its jobs stay). Raises: ScheduleNotFound; DatabaseUnavailable."""
        async with write(self.engine) as conn:
            if not await rows.delete_schedule(conn, name):
                raise ScheduleNotFound(name)

    async def set_paused(self, name: str, paused: bool) -> ScheduleRow:
        """Pause (no slot fires) or resume (the next slot is the first after now: the slots
        missed while paused are not run).

        Raises:
            ScheduleNotFound; DatabaseUnavailable.
        """
        async with write(self.engine) as conn:
            current = await rows.get_schedule(conn, name, lock=True)
            if current is None:
                raise ScheduleNotFound(name)
            values: dict[str, Any] = {"paused": paused}
            if not paused and current.paused:
                now = await rows.database_now(conn)
                values["next_run_at"] = next_run(current.cron, current.timezone, now)
            updated = await rows.update_schedule(conn, name, values)
        assert updated is not None
        return updated

    async def fire_due(self) -> list[Fired]:
        """One scheduler round: create the job of each due schedule's latest slot and move it
        to its next slot. Nothing when another process's round holds the lock.

        Raises:
            DatabaseUnavailable: what was fired stays fired; the rest is tried next round.
        """
        fired: list[Fired] = []
        async with write(self.engine) as conn:
            if not await rows.try_lock_round(conn):
                return fired
            now = await rows.database_now(conn)
            for schedule in await rows.due_schedules(conn, FIRE_BATCH):
                slot = max(
                    last_run(schedule.cron, schedule.timezone, now) or schedule.next_run_at,
                    schedule.next_run_at,
                )
                if slot > schedule.next_run_at:
                    log.warning(
                        "schedule_slots_skipped",
                        schedule=schedule.name,
                        first_missed=schedule.next_run_at.isoformat(),
                        running=slot.isoformat(),
                    )
                job_id = await self._fire(schedule, slot)
                values = {
                    "next_run_at": next_run(schedule.cron, schedule.timezone, now),
                    "last_run_at": slot,
                    "last_job_id": job_id,
                }
                await rows.update_schedule(conn, schedule.name, values)
                fired.append(Fired(schedule.name, slot, job_id))
        return fired

    async def _fire(self, schedule: ScheduleRow, slot: datetime) -> int | None:
        request = JobRequest(
            task=schedule.task,
            payload=schedule.payload,
            queue=schedule.queue,
            priority=schedule.priority,
            description=f"schedule {schedule.name} at {slot.isoformat()}",
            idempotency_key=slot_key(schedule.name, slot),
        )
        try:
            [created] = await self.create_many([request])
        except (InvalidJobRequest, IdempotencyConflict) as exc:
            log.warning("schedule_fire_failed", schedule=schedule.name, error=str(exc)[:300])
            return None
        log.info(
            "schedule_fired",
            schedule=schedule.name,
            slot=slot.isoformat(),
            job_id=created.job.id,
            created=created.created,
        )
        return created.job.id
