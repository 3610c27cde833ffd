"""The SQL of schedules (periodic jobs): SQLAlchemy Core on ``schedules``; nothing commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from jobqueue.db.tables import schedules

SCHEDULER_LOCK_KEY: Final = 0x6A71_5C4E
"""The advisory lock key a scheduler round takes (one round at a time across processes)."""

MAX_SCHEDULES: Final = 10_000
"""Most schedules a deployment may have: every list and every due query stays bounded."""


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A schedule as stored. Times are UTC."""

    name: str
    cron: str
    timezone: str
    task: str
    payload: Any
    queue: str
    priority: int
    paused: bool
    source: str
    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: int | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = tuple(schedules.c[name] for name in ScheduleRow.__dataclass_fields__)


def _row(row: Any) -> ScheduleRow:
    return ScheduleRow(**row._asdict())


async def list_schedules(
    conn: AsyncConnection, after: str = "", limit: int = MAX_SCHEDULES
) -> list[ScheduleRow]:
    """Schedules by name: the ``limit`` first whose name sorts after ``after`` (keyset)."""
    statement = (
        select(*_COLUMNS)
        .where(schedules.c.name > after)
        .order_by(schedules.c.name)
        .limit(min(limit, MAX_SCHEDULES))
    )
    return [_row(row) for row in await conn.execute(statement)]


async def count_schedules(conn: AsyncConnection) -> int:
    """How many schedules exist."""
    return int(await conn.scalar(select(func.count()).select_from(schedules)) or 0)


async def get_schedule(conn: AsyncConnection, name: str, lock: bool = False) -> ScheduleRow | None:
    """The schedule ``name`` (locked ``FOR UPDATE`` with ``lock``), or None."""
    statement = select(*_COLUMNS).where(schedules.c.name == name)
    if lock:
        statement = statement.with_for_update()
    row = (await conn.execute(statement)).first()
    return None if row is None else _row(row)


async def insert_schedule(
    conn: AsyncConnection, values: dict[str, Any], *, replace: bool = False
) -> ScheduleRow | None:
    """Insert a schedule; None when the name is taken (and not ``replace``). With ``replace``
    (the settings' schedules at start) an existing row gets the new definition and keeps its
    pause state, its last run and its next slot (so a slot missed while every worker was down
    still gets its catch-up job); only a new cron or time zone moves the next slot.

    Args:
        values: name, cron, timezone, task, payload (JSON-able), queue, priority, source,
            next_run_at.
    """
    row_values = dict(values)
    statement = insert(schedules).values(**row_values)
    if replace:
        keep = ("name", "paused", "last_run_at", "last_job_id", "created_at", "next_run_at")
        changed: dict[str, Any] = {
            column: statement.excluded[column] for column in row_values if column not in keep
        }
        rescheduled = (schedules.c.cron != statement.excluded.cron) | (
            schedules.c.timezone != statement.excluded.timezone
        )
        changed["next_run_at"] = case(
            (rescheduled, statement.excluded.next_run_at), else_=schedules.c.next_run_at
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[schedules.c.name], set_={**changed, "updated_at": func.now()}
        )
        row = (await conn.execute(upsert.returning(*_COLUMNS))).one()
        return _row(row)
    inserted = statement.on_conflict_do_nothing(index_elements=[schedules.c.name])
    found = (await conn.execute(inserted.returning(*_COLUMNS))).first()
    return None if found is None else _row(found)


async def update_schedule(
    conn: AsyncConnection, name: str, values: dict[str, Any]
) -> ScheduleRow | None:
    """Change some columns of ``name`` (``updated_at`` too); None when there is none."""
    statement = (
        schedules.update()
        .where(schedules.c.name == name)
        .values(**values, updated_at=func.now())
        .returning(*_COLUMNS)
    )
    row = (await conn.execute(statement)).first()
    return None if row is None else _row(row)


async def delete_schedule(conn: AsyncConnection, name: str) -> bool:
    """Delete ``name``; False when there was none."""
    result = await conn.execute(schedules.delete().where(schedules.c.name == name))
    return bool(result.rowcount)


async def try_lock_round(conn: AsyncConnection) -> bool:
    """Take the scheduler's transaction-level advisory lock without waiting; False when another
    process's round holds it."""
    return bool(await conn.scalar(select(func.pg_try_advisory_xact_lock(SCHEDULER_LOCK_KEY))))


async def due_schedules(conn: AsyncConnection, limit: int = 100) -> list[ScheduleRow]:
    """Schedules not paused whose ``next_run_at`` has come (database clock), earliest first,
    locked ``FOR UPDATE SKIP LOCKED``."""
    statement = (
        select(*_COLUMNS)
        .where(~schedules.c.paused, schedules.c.next_run_at <= func.now())
        .order_by(schedules.c.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_row(row) for row in await conn.execute(statement)]


async def database_now(conn: AsyncConnection) -> datetime:
    """The database's clock (UTC)."""
    value = await conn.scalar(select(func.now()))
    assert isinstance(value, datetime)
    return value
