"""Queues: the list with counts, and pause / resume.

A queue is *known* when it is configured (``JOBQUEUE_QUEUES``, ``JOBQUEUE_REMOTE_QUEUES``), a
live process serves it (its registry row), or it was paused before (a row in ``queues``).
Pausing writes the row; every claim reads it (``leases/_statements.py``), so every process stops
taking the queue's jobs at its next claim, at once, with no message to miss; running jobs
finish. Resuming clears it and sends the "runnable" NOTIFY, so claimers take the waiting jobs at
once instead of at their next poll.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import dashboard_queries, queries, registry
from jobqueue.db import queues as queue_rows
from jobqueue.db.engine import read, write
from jobqueue.errors import QueueNotFound
from jobqueue.jobs import JobStatus
from jobqueue.notify import CHANNEL, protocol

MAX_LISTED_QUEUES = 500
"""Most queues :meth:`Queues.list` answers one by one (the known ones first, then the largest
in the table); the jobs of any other queue are not listed."""


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One queue as ``GET /queues`` shows it.

    Attributes:
        name: the queue.
        counts: jobs per status (every status present, 0 when none).
        paused: whether claims skip it; ``paused_at``/``paused_by`` say since when and who.
        slots_online: runner slots live processes give it (their registry rows).
        oldest_due_seconds: how long its oldest due ``todo`` job has waited past its
            ``run_at``, in seconds; None when none is due.
        counts_estimated: the ``done``, ``failed`` and ``cancelled`` counts are the planner's
            estimates (``db/counts.py``); ``todo`` and ``in_progress`` are always exact.
    """

    name: str
    counts: dict[JobStatus, int] = field(default_factory=dict)
    paused: bool = False
    paused_at: datetime | None = None
    paused_by: str | None = None
    slots_online: int = 0
    oldest_due_seconds: float | None = None
    counts_estimated: bool = False


class Queues:
    """List, pause and resume queues.

    Args:
        engine: the process's engine.
        configured: the queues of the settings (``JOBQUEUE_QUEUES`` and ``JOBQUEUE_REMOTE_QUEUES``).
        resumed: told ``{queue: 0.0}`` after a resume commits (wakes the local claimer).
        origin: this app's NOTIFY origin tag.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        configured: Collection[str],
        resumed: Callable[[dict[str, float]], None],
        origin: str | None = None,
    ) -> None:
        self.engine = engine
        self.configured = frozenset(configured)
        self.resumed = resumed
        self.origin = origin

    async def _check_known(self, name: str) -> None:
        if name in self.configured:
            return
        async with read(self.engine) as conn:
            served = await queue_rows.slots_online(conn, registry.PROCESS_LIVE_SECONDS)
            rows = await queue_rows.queue_states(conn)
        if name not in served and name not in rows:
            raise QueueNotFound(name, sorted(self.configured | set(served) | set(rows)))

    async def pause(self, name: str, by: str) -> QueueInfo:
        """Pause ``name``: no process claims its jobs from its next claim on; running jobs
        finish. Pausing a paused queue changes nothing.

        Args:
            name: the queue.
            by: who asks (an API key's name), kept with the pause.

        Raises:
            QueueNotFound: the queue is not known. DatabaseUnavailable.
        """
        await self._check_known(name)
        async with write(self.engine) as conn:
            state = await queue_rows.set_paused(conn, name, True, by)
        return QueueInfo(name, {}, True, state.paused_at, state.paused_by)

    async def resume(self, name: str, by: str) -> QueueInfo:
        """Resume ``name`` and wake every claimer of it (NOTIFY). Resuming a queue that is not
        paused changes nothing but still wakes claimers.

        Raises:
            QueueNotFound: the queue is not known. DatabaseUnavailable.
        """
        await self._check_known(name)
        async with write(self.engine) as conn:
            await queue_rows.set_paused(conn, name, False, by)
            payload = protocol.queues_runnable([name], self.origin)
            await queries.notify(conn, queries.Notice(CHANNEL, payload))
        self.resumed({name: 0.0})
        return QueueInfo(name)

    async def list(self) -> list[QueueInfo]:
        """Every known queue and every queue with jobs (up to :data:`MAX_LISTED_QUEUES`), by
        name, with its counts per status, pause state, slots online and oldest due job.

        Raises:
            DatabaseUnavailable.
        """
        async with read(self.engine) as conn:
            served = await queue_rows.slots_online(conn, registry.PROCESS_LIVE_SECONDS)
            rows = await queue_rows.queue_states(conn)
            first = self.configured | set(served) | set(rows)
            counted = await dashboard_queries.count_by_queue_and_status(
                conn, limit=MAX_LISTED_QUEUES, first=first
            )
            kept = {c.queue for c in counted.counts}
            oldest = await dashboard_queries.oldest_due_age_by_queue(conn, sorted(kept | first))
        infos = {
            name: QueueInfo(name, dict.fromkeys(JobStatus, 0)) for name in sorted(first | kept)
        }
        for count in counted.counts:
            infos[count.queue].counts[count.status] = count.jobs
        result = []
        for name, info in infos.items():
            state = rows.get(name)
            result.append(
                QueueInfo(
                    name,
                    info.counts,
                    state is not None and state.paused,
                    None if state is None else state.paused_at,
                    None if state is None else state.paused_by,
                    served.get(name, 0),
                    oldest.get(name),
                    counted.estimated,
                )
            )
        return result
