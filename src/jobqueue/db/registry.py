"""The process registry's SQL: each process's row in ``processes`` (who it is, its role, what it
serves and can run, how busy it is), renewed by its registry loop; rows not renewed for a while
belong to dead processes. SQLAlchemy Core on the tables; nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from jobqueue.db.tables import jobs, processes
from jobqueue.jobs import JobStatus

ANY_TASK: Final = "*"
"""In a row's ``tasks``: the process takes any task of its queues (a remote worker that leases
without naming tasks). No task name can be ``*`` (``jobs.TASK_NAME_PATTERN``)."""

PROCESS_LIVE_SECONDS: Final = 30.0
"""A process counts as live while its registry row is younger than this, in seconds (it renews
the row every 10 s: two renewals may fail before it is taken for dead)."""


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What a process announces in ``processes``: who it is and what it can run.

    Attributes:
        worker_id: the process's id (also the ``worker_id`` of the jobs it claims).
        role: ``serve`` (API and workers), ``worker`` or ``api``; ``remote`` for a worker that
            leases over HTTP (its row is written by the API process that answers it).
        queues: the queues it serves (none for ``api``).
        tasks: the tasks it can run.
        slots: ``(queue, slots)`` pairs: the runner slots it gives each queue.
    """

    worker_id: str
    host: str
    pid: int
    version: str
    queues: tuple[str, ...]
    tasks: tuple[str, ...]
    slots: tuple[tuple[str, int], ...] = ()
    role: str = "serve"


@dataclass(frozen=True, slots=True)
class LiveProcess:
    """A live process's row, as ``GET /workers`` shows it (times UTC)."""

    worker_id: str
    host: str
    pid: int
    role: str
    version: str
    queues: list[str]
    tasks: list[str]
    slots: dict[str, int]
    busy: int
    started_at: datetime
    seen_at: datetime
    finished: dict[str, list[int]]


async def announce_process(
    conn: AsyncConnection,
    info: ProcessInfo,
    busy: int = 0,
    finished: dict[str, list[int]] | None = None,
) -> None:
    """Insert or renew this process's row (``seen_at = now()``), with ``busy`` slots now and
    the jobs it ``finished`` per minute (``{"<unix minute>": [done, failed]}``)."""
    values = {
        "worker_id": info.worker_id,
        "host": info.host,
        "pid": info.pid,
        "version": info.version,
        "role": info.role,
        "queues": list(info.queues),
        "tasks": list(info.tasks),
        "slots": dict(info.slots),
        "busy": busy,
        "finished": finished or {},
    }
    statement = insert(processes).values(**values, seen_at=func.now())
    statement = statement.on_conflict_do_update(
        index_elements=[processes.c.worker_id],
        set_={
            "queues": statement.excluded.queues,
            "tasks": statement.excluded.tasks,
            "slots": statement.excluded.slots,
            "busy": statement.excluded.busy,
            "finished": statement.excluded.finished,
            "seen_at": func.now(),
        },
    )
    await conn.execute(statement)


async def withdraw_process(conn: AsyncConnection, worker_id: str) -> None:
    """Delete this process's row (a clean stop)."""
    await conn.execute(processes.delete().where(processes.c.worker_id == worker_id))


async def forget_silent_processes(conn: AsyncConnection, silent_seconds: float) -> int:
    """Delete the rows not renewed for ``silent_seconds`` (their process died); how many."""
    cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, silent_seconds)
    result = await conn.execute(processes.delete().where(processes.c.seen_at < cutoff))
    return int(result.rowcount or 0)


def _live_cutoff(fresh_seconds: float) -> ColumnElement[Any]:
    return processes.c.seen_at > func.now() - func.make_interval(0, 0, 0, 0, 0, 0, fresh_seconds)


async def live_processes(
    conn: AsyncConnection, fresh_seconds: float = PROCESS_LIVE_SECONDS
) -> list[LiveProcess]:
    """The processes that renewed their row in the last ``fresh_seconds``, oldest first."""
    statement = (
        select(
            processes.c.worker_id,
            processes.c.host,
            processes.c.pid,
            processes.c.role,
            processes.c.version,
            processes.c.queues,
            processes.c.tasks,
            processes.c.slots,
            processes.c.busy,
            processes.c.started_at,
            processes.c.seen_at,
            processes.c.finished,
        )
        .where(_live_cutoff(fresh_seconds))
        .order_by(processes.c.started_at, processes.c.worker_id)
    )
    return [LiveProcess(**row._asdict()) for row in await conn.execute(statement)]


async def live_catalog(
    conn: AsyncConnection, fresh_seconds: float = PROCESS_LIVE_SECONDS
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """``(tasks, queues, open queues)`` of the live processes: the tasks some live process
    runs, the queues it serves, and the queues whose every task some live process takes
    (:data:`ANY_TASK`). One statement."""
    statement = select(processes.c.tasks, processes.c.queues).where(_live_cutoff(fresh_seconds))
    task_names: set[str] = set()
    queue_names: set[str] = set()
    open_queues: set[str] = set()
    for row in await conn.execute(statement):
        queue_names.update(row.queues)
        if ANY_TASK in row.tasks:
            open_queues.update(row.queues)
        task_names.update(name for name in row.tasks if name != ANY_TASK)
    return frozenset(task_names), frozenset(queue_names), frozenset(open_queues)


async def jobs_without_worker(
    conn: AsyncConnection, fresh_seconds: float, kept: Sequence[str] | None = None
) -> dict[tuple[str | None, str], int]:
    """``todo`` jobs per ``(queue, task)`` that no live process can run: none renewed its row
    in the last ``fresh_seconds`` while serving the queue and having the task.

    Groups the ``todo`` rows first (a few pairs), then checks each pair against the registry.

    Args:
        kept: when given, the queues answered one by one; the jobs of every other queue are
            added up per task under the queue None, so the answer stays small however many
            queues the table holds.
    """
    todo: Any = bindparam("status", JobStatus.TODO.value, literal_execute=True)
    pairs = (
        select(jobs.c.queue, jobs.c.task, func.count().label("jobs"))
        .where(jobs.c.status == todo)
        .group_by(jobs.c.queue, jobs.c.task)
        .cte("pairs")
    )
    live: Select[Any] = (
        select(literal_column("1"))
        .select_from(processes)
        .where(
            and_(
                _live_cutoff(fresh_seconds),
                pairs.c.queue == any_(processes.c.queues),
                or_(
                    pairs.c.task == any_(processes.c.tasks),
                    literal(ANY_TASK) == any_(processes.c.tasks),
                ),
            )
        )
    )
    queue: ColumnElement[Any] = pairs.c.queue
    if kept is not None:
        queue = case((pairs.c.queue == any_(bindparam("kept", type_=ARRAY(Text))), pairs.c.queue))
    statement = (
        select(queue.label("queue"), pairs.c.task, cast(func.sum(pairs.c.jobs), BigInteger))
        .where(~exists(live))
        .group_by(queue, pairs.c.task)
    )
    parameters = {} if kept is None else {"kept": list(kept)}
    return {(row[0], row[1]): row[2] for row in await conn.execute(statement, parameters)}


async def touch_process(conn: AsyncConnection, worker_id: str, busy: int) -> bool:
    """Renew a row's ``seen_at`` and set its ``busy`` (a remote worker's heartbeat: the API
    process knows its id but not what it serves). Returns False when there is no such row."""
    result = await conn.execute(
        processes.update()
        .where(processes.c.worker_id == worker_id)
        .values(seen_at=func.now(), busy=busy)
    )
    return bool(result.rowcount)
