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

import json
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
from jobqueue.jobs import SCHEDULE_KEY_PREFIX, NewJob
from jobqueue.metrics import Metrics
from jobqueue.service._cron import InvalidSchedule, expression, last_run, next_run, zone
from jobqueue.service._enqueue import Created
from jobqueue.service._intake import JobRequest

log = structlog.get_logger("jobqueue.scheduler")

ScheduleRow = rows.ScheduleRow

MAX_SCHEDULE_PAYLOAD_BYTES = 65_536
"""The largest payload a schedule's jobs may carry, bytes of compact JSON: a page of 100
schedules stays under about 6.4 MiB."""

FIRE_BATCH = 500
"""Due schedules fired per transaction (their jobs created in one enqueue); a round goes on
with the next batch until none is due."""


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


def check_definition(spec: ScheduleSpec) -> None:
    """Check a schedule's own fields: a name with a letter or digit, a payload of at most
    :data:`MAX_SCHEDULE_PAYLOAD_BYTES`, the cron expression and the time zone. (The job it makes
    is checked against the known tasks and queues when it is created.)

    Raises:
        InvalidSchedule: the first rule broken, saying what to fix.
    """
    if not any(c.isalnum() for c in spec.name):
        raise InvalidSchedule(f"schedule name {spec.name!r} needs a letter or a digit")
    size = len(json.dumps(spec.payload or {}, separators=(",", ":")).encode())
    if size > MAX_SCHEDULE_PAYLOAD_BYTES:
        raise InvalidSchedule(
            f"a schedule's payload is at most {MAX_SCHEDULE_PAYLOAD_BYTES} bytes of JSON, "
            f"got {size}: put large data elsewhere and pass a reference"
        )
    expression(spec.cron)
    zone(spec.timezone)


def slot_key(name: str, slot: datetime) -> str:
    """The idempotency key of ``name``'s job for ``slot``."""
    return f"{SCHEDULE_KEY_PREFIX}{name}:{slot.isoformat()}"


class Schedules:
    """The schedule use cases.

    Args:
        engine: the process's engine.
        check: checks a job request as an enqueue does, the registry's names included (raises
            its errors): :meth:`JobService.check`.
        create_many: creates jobs as :meth:`JobService.create_many` does.
        metrics: slots are counted in ``jobqueue_schedule_slots_total{outcome}``.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        check: Callable[[JobRequest], Awaitable[NewJob]],
        create_many: Callable[[Sequence[JobRequest]], Awaitable[list[Created]]],
        metrics: Metrics,
    ) -> None:
        self.metrics = metrics
        self.engine = engine
        self.check = check
        self.create_many = create_many

    async def _check(self, spec: ScheduleSpec) -> None:
        """:func:`check_definition`, then the job as an enqueue checks it."""
        check_definition(spec)
        job = JobRequest(
            task=spec.task, payload=spec.payload, queue=spec.queue, priority=spec.priority
        )
        await self.check(job)

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

    async def list_all(self, after: str = "", limit: int = rows.MAX_SCHEDULES) -> list[ScheduleRow]:
        """Schedules by name, the ``limit`` first after the name ``after``.
        Raises: DatabaseUnavailable."""
        async with read(self.engine) as conn:
            return await rows.list_schedules(conn, after, limit)

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
        await self._check(spec)
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
                await self._check(spec)
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
            await self._check(spec)
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
        """Fire every due schedule: batches of :data:`FIRE_BATCH`, each one transaction that
        creates the batch's jobs in one enqueue and moves each schedule to its next slot.
        Nothing when another process's round holds the lock.

        Raises:
            DatabaseUnavailable: what was fired stays fired; the rest is tried next round.
        """
        fired: list[Fired] = []
        while True:
            batch = await self._fire_batch()
            if batch is None:
                return fired
            fired.extend(batch)
            if len(batch) < FIRE_BATCH:
                return fired

    async def _fire_batch(self) -> list[Fired] | None:
        async with write(self.engine) as conn:
            if not await rows.try_lock_round(conn):
                return None
            now = await rows.database_now(conn)
            due = await rows.due_schedules(conn, FIRE_BATCH)
            slots = [self._slot(schedule, now) for schedule in due]
            requests = [_request(s, slot) for s, slot in zip(due, slots, strict=True)]
            job_ids = await self._create(requests, due)
            for schedule, slot, job_id in zip(due, slots, job_ids, strict=True):
                values = {
                    "next_run_at": next_run(schedule.cron, schedule.timezone, now),
                    "last_run_at": slot,
                    "last_job_id": job_id,
                }
                await rows.update_schedule(conn, schedule.name, values)
        for schedule, slot, job_id in zip(due, slots, job_ids, strict=True):
            outcome = "fired" if job_id is not None else "failed"
            self.metrics.schedule_slots.labels(outcome).inc()
            log.info("schedule_fired", schedule=schedule.name, slot=slot.isoformat(), job_id=job_id)
        fired = zip(due, slots, job_ids, strict=True)
        return [Fired(s.name, slot, job_id) for s, slot, job_id in fired]

    def _slot(self, schedule: ScheduleRow, now: datetime) -> datetime:
        """The slot to fire: the latest at or before ``now`` (one catch-up after downtime)."""
        slot = max(
            last_run(schedule.cron, schedule.timezone, now) or schedule.next_run_at,
            schedule.next_run_at,
        )
        if slot > schedule.next_run_at:
            self.metrics.schedule_slots.labels("skipped").inc()
            log.warning(
                "schedule_slots_skipped",
                schedule=schedule.name,
                first_missed=schedule.next_run_at.isoformat(),
                running=slot.isoformat(),
            )
        return slot

    async def _create(
        self, requests: list[JobRequest], due: Sequence[ScheduleRow]
    ) -> list[int | None]:
        """The jobs of ``requests`` in one enqueue; when one of them cannot be created, each
        on its own (the others still are: ``None`` for the ones that failed)."""
        if not requests:
            return []
        try:
            return [created.job.id for created in await self.create_many(requests)]
        except (InvalidJobRequest, IdempotencyConflict):
            pass
        ids: list[int | None] = []
        for request, schedule in zip(requests, due, strict=True):
            try:
                [created] = await self.create_many([request])
                ids.append(created.job.id)
            except (InvalidJobRequest, IdempotencyConflict) as exc:
                log.warning("schedule_fire_failed", schedule=schedule.name, error=str(exc)[:300])
                ids.append(None)
        return ids


def _request(schedule: ScheduleRow, slot: datetime) -> JobRequest:
    """The job request of ``schedule``'s ``slot``, keyed so that the slot makes one job."""
    return JobRequest(
        task=schedule.task,
        payload=schedule.payload,
        queue=schedule.queue,
        priority=schedule.priority,
        description=f"schedule {schedule.name} at {slot.isoformat()}",
        idempotency_key=slot_key(schedule.name, slot),
    )
