"""Queue state: paused or not (the ``queues`` table), and the slots live processes serve per
queue (``processes.slots``). SQLAlchemy Core on the tables; none of it is a hot path (the claim
reads ``queues`` itself, in ``leases/_statements.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, cast, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from jobqueue.db.tables import processes, queues


@dataclass(frozen=True, slots=True)
class QueueState:
    """A queue's row in ``queues``: ``paused_at`` is set while it is paused, with who paused it
    (an API key's name, ``anonymous`` without keys)."""

    name: str
    paused_at: datetime | None
    paused_by: str | None

    @property
    def paused(self) -> bool:
        """True while the queue is paused."""
        return self.paused_at is not None


async def set_paused(conn: AsyncConnection, name: str, paused: bool, by: str) -> QueueState:
    """Pause (``paused``) or resume the queue ``name``; pausing a paused queue keeps its first
    ``paused_at`` and ``paused_by``. Returns the row after the write."""
    now: Any = func.now()
    statement = insert(queues).values(
        name=name,
        paused_at=now if paused else None,
        paused_by=by if paused else None,
        updated_at=now,
    )
    keep_or_set: Any = func.coalesce(queues.c.paused_at, now)
    upsert = statement.on_conflict_do_update(
        index_elements=[queues.c.name],
        set_={
            "paused_at": keep_or_set if paused else None,
            "paused_by": case((queues.c.paused_at.is_(None), literal(by)), else_=queues.c.paused_by)
            if paused
            else None,
            "updated_at": now,
        },
    ).returning(queues.c.name, queues.c.paused_at, queues.c.paused_by)
    row = (await conn.execute(upsert)).one()
    return QueueState(row.name, row.paused_at, row.paused_by)


async def queue_states(conn: AsyncConnection) -> dict[str, QueueState]:
    """Every row of ``queues`` (queues once paused), by name."""
    rows = await conn.execute(select(queues.c.name, queues.c.paused_at, queues.c.paused_by))
    return {row.name: QueueState(row.name, row.paused_at, row.paused_by) for row in rows}


async def slots_online(conn: AsyncConnection, fresh_seconds: float) -> dict[str, int]:
    """Runner slots per queue over the processes that renewed their registry row in the last
    ``fresh_seconds`` (the live ones)."""
    cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, fresh_seconds)
    each = func.jsonb_each_text(processes.c.slots).table_valued("key", "value")
    statement = (
        select(each.c.key, func.sum(cast(each.c.value, Integer)).label("slots"))
        .select_from(processes)
        .join(each, literal(True))
        .where(processes.c.seen_at > cutoff)
        .group_by(each.c.key)
    )
    return {row.key: int(row.slots) for row in await conn.execute(statement)}
