"""DashboardService: the web dashboard's use cases (overview, job search, a job's timeline).

Knows the domain and the database, never HTTP; raises the errors of ``jobqueue.errors``, which
the API maps. Reads only: actions (cancel, retry, enqueue a copy) go through the JSON API and
:class:`jobqueue.service.JobService`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import dashboard_queries as queries
from jobqueue.db import registry as registry_queries
from jobqueue.db.dashboard_queries import JobSummary, MinuteCount
from jobqueue.db.engine import read
from jobqueue.encoding import decode_cursor, one_page
from jobqueue.errors import InvalidJobRequest
from jobqueue.jobs import Attempt, Job, JobFilter, JobStatus
from jobqueue.metrics import THROUGHPUT_MINUTES

__all__ = [
    "DashboardService",
    "JobSummary",
    "JobsPage",
    "MinuteCount",
    "Overview",
    "QueueCounts",
    "TimelineEvent",
    "timeline",
]

OTHER_QUEUES = "(other queues)"
"""How the overview names the queues beyond the ones it lists one by one."""

MAX_WITHOUT_WORKER = 20
"""The most (queue, task) pairs of jobs without a worker that the overview lists."""

STATUSES: tuple[JobStatus, ...] = tuple(JobStatus)
"""Every status, in the order the dashboard shows them (the state machine's order)."""

MAX_QUEUES = 50
"""Queues the overview lists one by one (the largest); the others are summed in one row."""


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Jobs of one queue per status.

    Attributes:
        queue: the queue's name.
        counts: every status (zeros included) to its number of jobs.
    """

    queue: str
    counts: dict[JobStatus, int]

    @property
    def total(self) -> int:
        """Jobs of the queue, all statuses together."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class Overview:
    """What the dashboard's front page shows.

    Attributes:
        queues: per-queue counts, by queue name; only queues that have jobs, at most
            :data:`MAX_QUEUES` of them (the largest).
        totals: every status (zeros included) to its number of jobs, all queues together.
        other_queues: how many queues with jobs are not in ``queues``.
        other_counts: their jobs per status (zeros included), added up.
        throughput: jobs finished (``done``/``failed``) per minute over the last hour, oldest
            first, 61 minutes (the live processes' counts: :meth:`DashboardService._throughput`).
        without_worker: ``todo`` jobs that no live process can run, as ``(queue, task, jobs)``,
            most jobs first, at most :data:`MAX_WITHOUT_WORKER` pairs (a rolling deploy that
            added a task to some processes only, or every worker of a queue stopped).
        generated_at: when it was read (UTC, the process's clock).
        counts_estimated: the ``done``, ``failed`` and ``cancelled`` counts are the planner's
            estimates (more than 100,000 finished rows: ``db/counts.py``).
        processes: the live processes of the registry (their busy slots as of their last
            renewal, at most 10 s old).
    """

    queues: list[QueueCounts]
    totals: dict[JobStatus, int]
    throughput: list[MinuteCount]
    without_worker: list[tuple[str, str, int]] = field(default_factory=list)
    other_queues: int = 0
    other_counts: dict[JobStatus, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    processes: list[registry_queries.LiveProcess] = field(default_factory=list)
    counts_estimated: bool = False

    @property
    def total(self) -> int:
        """Jobs in the table, all queues and statuses together."""
        return sum(self.totals.values())

    @property
    def done_last_hour(self) -> int:
        """Jobs that ended ``done`` in the last hour."""
        return sum(minute.done for minute in self.throughput)

    @property
    def failed_last_hour(self) -> int:
        """Jobs that ended ``failed`` in the last hour."""
        return sum(minute.failed for minute in self.throughput)

    @property
    def failure_rate(self) -> float | None:
        """``failed / (done + failed)`` over the last hour, 0.0 to 1.0; None when none ended."""
        finished = self.done_last_hour + self.failed_last_hour
        return None if finished == 0 else self.failed_last_hour / finished


@dataclass(frozen=True, slots=True)
class JobsPage:
    """One page of the dashboard's job list: ``items`` newest first; ``next_cursor`` (the JSON
    API's cursor format) is None on the last page."""

    items: list[JobSummary]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One step in a job's life.

    Attributes:
        at: when (UTC).
        kind: ``created``, ``due``, ``started``, ``cancel_requested``, an attempt outcome
            (``retried``, ``failed``, ``cancelled``, ``rescued``, ``done``) or ``finished``.
        label: a short human description, e.g. ``"attempt 2 started"``.
        detail: the worker, the error or the duration, when there is one.
    """

    at: datetime
    kind: str
    label: str
    detail: str | None = None


class DashboardService:
    """The dashboard's reads, over the process's engine.

    Args:
        engine: the process's async engine.
        cache_seconds: how long one overview serves every caller, in seconds (its queries scan
            the table; browsers poll every 2 s). 0 disables the cache.
        max_queues: queues the overview lists one by one (the largest; the rest are summed).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        cache_seconds: float = 1.0,
        max_queues: int = MAX_QUEUES,
        own: tuple[str, Callable[[], dict[str, list[int]]]] | None = None,
    ) -> None:
        self.engine = engine
        self.own = own
        self.cache_seconds = cache_seconds
        self.max_queues = max_queues
        self._lock = asyncio.Lock()
        self._cached: Overview | None = None
        self._cached_at = 0.0

    async def overview(self) -> Overview:
        """Counts per queue and status and the last hour's throughput.

        A few statements on one connection, none scanning the whole table: the counts by queue
        and status (``db/counts.py``, bounded to ``max_queues`` queues, the rest added up), the
        ``todo`` jobs no live process can run, and the live processes, whose registry rows carry
        the jobs each finished per minute (the throughput chart: :meth:`_throughput`). Concurrent
        callers share one read, and a read serves for ``cache_seconds``.

        Raises:
            DatabaseUnavailable: the database cannot be reached.
        """
        loop = asyncio.get_running_loop()
        async with self._lock:
            cached = self._cached
            if cached is not None and loop.time() - self._cached_at < self.cache_seconds:
                return cached
            async with read(self.engine) as conn:
                counts = await queries.count_by_queue_and_status(conn, limit=self.max_queues)
                orphans = await registry_queries.jobs_without_worker(
                    conn,
                    registry_queries.PROCESS_LIVE_SECONDS,
                    [row.queue for row in counts.counts],
                )
                processes = await registry_queries.live_processes(conn)
            throughput = self._throughput(processes)
            overview = dataclasses.replace(_overview(counts, throughput), processes=processes)
            listed = [(queue or OTHER_QUEUES, task, n) for (queue, task), n in orphans.items()]
            listed.sort(key=lambda item: (-item[2], item[0], item[1]))
            overview.without_worker.extend(listed[:MAX_WITHOUT_WORKER])
            self._cached, self._cached_at = overview, loop.time()
            return overview

    def _throughput(self, processes: Sequence[registry_queries.LiveProcess]) -> list[MinuteCount]:
        """Jobs ended ``done``/``failed`` per minute over the last hour, added up over the live
        processes' registry rows (this process's own counts taken live, the others' as of their
        last renewal, at most 10 s old). A process that stopped takes its counts with it."""
        per_process = {p.worker_id: p.finished for p in processes}
        if self.own is not None:
            own_id, own_counts = self.own
            per_process[own_id] = own_counts()
        now_minute = int(time.time() // 60)
        first = now_minute - THROUGHPUT_MINUTES + 1
        totals = {minute: [0, 0] for minute in range(first, now_minute + 1)}
        for counts in per_process.values():
            for minute_text, (done, failed) in counts.items():
                slot = totals.get(int(minute_text))
                if slot is not None:
                    slot[0] += done
                    slot[1] += failed
        return [
            MinuteCount(datetime.fromtimestamp(minute * 60, UTC), done, failed)
            for minute, (done, failed) in sorted(totals.items())
        ]

    async def search(
        self, where: JobFilter, *, limit: int = 50, cursor: str | None = None
    ) -> JobsPage:
        """A page of jobs, newest first, keyset-paginated, filtered.

        Args:
            where: the filters; ``""`` counts as "any" like None.
            limit: page size, 1 to 1000.
            cursor: ``next_cursor`` of the previous page (same filters), None for the first.

        Raises:
            InvalidCursor: a cursor this service did not issue.
            InvalidJobRequest: ``limit`` out of range, or a filter containing U+0000 (which
                PostgreSQL's text cannot hold).
            DatabaseUnavailable: the database cannot be reached.
        """
        if not 1 <= limit <= 1000:
            raise InvalidJobRequest(f"limit must be 1 to 1000, got {limit}")
        texts = {"queue": where.queue, "task": where.task, "text": where.text}
        for name, value in texts.items():
            if value and "\x00" in value:
                raise InvalidJobRequest(f"{name} contains U+0000, which no job can contain")
        where = JobFilter(where.status, where.queue or None, where.task or None, where.text or None)
        before_id = None if cursor is None else decode_cursor(cursor)
        async with read(self.engine) as conn:
            rows = await queries.search_jobs(conn, where, limit=limit + 1, before_id=before_id)
        items, next_cursor = one_page(rows, limit, lambda job: job.id)
        return JobsPage(items=items, next_cursor=next_cursor)


def _overview(counts: queries.QueueCounts, throughput: list[MinuteCount]) -> Overview:
    by_queue: dict[str, dict[JobStatus, int]] = {}
    totals = dict.fromkeys(STATUSES, 0)
    for row in counts.counts:
        by_queue.setdefault(row.queue, dict.fromkeys(STATUSES, 0))[row.status] = row.jobs
        totals[row.status] += row.jobs
    other = dict.fromkeys(STATUSES, 0)
    for status, jobs in counts.rest.items():
        other[status] = jobs
        totals[status] += jobs
    queues = [QueueCounts(name, by_queue[name]) for name in sorted(by_queue)]
    return Overview(
        queues=queues,
        totals=totals,
        throughput=throughput,
        other_queues=counts.queues - len(queues),
        other_counts=other,
        counts_estimated=counts.estimated,
    )


def timeline(job: Job, attempts: Sequence[Attempt]) -> list[TimelineEvent]:
    """The steps of a job's life, oldest first: created, due (``run_at``), each attempt's start
    and end (with worker, error and duration), a cancel request, and the final status.

    Args:
        job: the job.
        attempts: its attempts, as :meth:`jobqueue.service.JobService.attempts` returns them.

    Returns:
        the events sorted by time; events at the same instant keep the order above.
    """
    events = [
        TimelineEvent(job.created_at, "created", "created", f"queue {job.queue}, task {job.task}"),
        TimelineEvent(job.run_at, "due", "due to run (run_at)"),
    ]
    for attempt in attempts:
        if attempt.started_at is not None:
            events.append(
                TimelineEvent(
                    attempt.started_at,
                    "started",
                    f"attempt {attempt.attempt} started",
                    f"worker {attempt.worker_id}" if attempt.worker_id else None,
                )
            )
        if attempt.finished_at is not None:
            events.append(
                TimelineEvent(
                    attempt.finished_at,
                    attempt.outcome,
                    f"attempt {attempt.attempt} {attempt.outcome}",
                    _attempt_detail(attempt),
                )
            )
    if job.cancel_requested_at is not None:
        events.append(
            TimelineEvent(job.cancel_requested_at, "cancel_requested", "cancel requested")
        )
    if job.status.is_final and job.finished_at is not None:
        events.append(TimelineEvent(job.finished_at, "finished", f"finished: {job.status}"))
    return sorted(events, key=lambda event: event.at)  # stable: ties keep the order above


def _attempt_detail(attempt: Attempt) -> str | None:
    parts: list[str] = []
    if attempt.started_at is not None and attempt.finished_at is not None:
        seconds = (attempt.finished_at - attempt.started_at).total_seconds()
        parts.append(f"after {format_seconds(seconds)}")
    if attempt.error_type is not None:
        parts.append(f"{attempt.error_type}: {attempt.error_message or ''}".rstrip(": "))
    return " · ".join(parts) or None


def format_seconds(seconds: float) -> str:
    """A duration for people: ``"850 ms"``, ``"2.50 s"``, ``"3 min 20 s"``, ``"2 h 5 min"``.

    Args:
        seconds: a duration in seconds (negative values, from clock steps, read as 0).
    """
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
