"""Prometheus metrics (prometheus-client), one registry per app.

Every name is documented in ``docs/metrics.md``. Counters and histograms are updated where the
event happens (the service on enqueue, the coordinator on each written batch, the runner per
attempt, the rescuer); the gauges about the table (jobs per queue and status, the age of the
oldest due job) come from grouped queries run at scrape time and cached for
``TABLE_STATS_TTL_SECONDS``, so a scrape costs the database at most one set of queries however
often Prometheus and dashboards ask.

Label values a client or the database controls (``queue``, ``task``) are bounded: each such
label takes at most ``label_limit`` distinct values (the configured queues and the registered
tasks are reserved first), and later values are counted under :data:`OTHER`. The bound is
applied here, inside every metric's ``labels(...)``, so no call site can forget it; the HTTP
``method`` label keeps the standard methods and folds the rest the same way. Each process's
exposition is therefore bounded whatever its clients send: with 100 values per label it is a
few hundred kilobytes at most.

The exposition itself (:meth:`Metrics.scrape`) is built by one caller at a time, in a worker
thread, and served from cache for ``EXPOSITION_TTL_SECONDS``: concurrent scrapes share one
build and never block the event loop while it runs.

One process, one registry: jobqueue runs one uvicorn process per replica (scale out with more
replicas, each scraped on its own), so prometheus-client's multiprocess mode is not needed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

TABLE_STATS_TTL_SECONDS = 2.0
"""How long the table gauges are served from cache, in seconds."""

EXPOSITION_TTL_SECONDS = 1.0
"""How long one built exposition serves every scrape, in seconds (Prometheus scrapes every
15 s or so: a second of staleness costs nothing, and a flood of scrapes costs one build)."""

DEFAULT_LABEL_LIMIT = 100
"""Distinct values per bounded label unless the app says (``JOBQUEUE_METRICS_MAX_LABEL_VALUES``)."""

OTHER = "other"
"""The value every label value past its bound is counted under."""

MAX_LABEL_LENGTH = 200
"""Longer values (the API allows at most 200 characters for a task, 100 for a queue) are
counted under :data:`OTHER`: a value from an old row must not make every sample huge."""

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The methods the ``method`` label keeps (RFC 9110 section 9 and PATCH); others read as other."""

# Job run times span milliseconds (no-op jobs) to minutes (reports, webhooks with retries).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Pickup latency: milliseconds when idle, seconds to hours when a backlog builds up.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800, 3600)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class LabelBound:
    """The values one label may take: the first ``limit`` distinct ones seen (reserved ones
    first), every later one read as :data:`OTHER`. Shared by every metric with that label, so a
    value is kept or folded the same way everywhere. Thread-safe (sync tasks count from
    threads).

    Args:
        limit: distinct values kept, >= 1.
        fixed: when given, exactly these values are kept and ``limit`` is ignored.
    """

    def __init__(self, limit: int, fixed: Iterable[str] | None = None) -> None:
        self.limit = limit
        self.fixed = fixed is not None
        self._kept: set[str] = set(fixed or ())
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many distinct values are kept now."""
        return len(self._kept)

    def reserve(self, values: Iterable[str]) -> None:
        """Keep ``values`` (in order, while there is room) before any value seen later."""
        for value in values:
            self(value)

    def __call__(self, value: str) -> str:
        """``value`` when it is kept (or there is room to keep it), else :data:`OTHER`."""
        if value in self._kept:  # the common case: no lock (a set lookup is atomic)
            return value
        if self.fixed or len(value) > MAX_LABEL_LENGTH:
            return OTHER
        with self._lock:
            if value in self._kept:
                return value
            if len(self._kept) < self.limit:
                self._kept.add(value)
                return value
        return OTHER


M = TypeVar("M", Counter, Histogram)


class BoundedMetric(Generic[M]):
    """A labelled metric whose ``labels(...)`` passes each value through its label's bound.

    Args:
        metric: the prometheus-client metric.
        bounds: one entry per label, in order: its :class:`LabelBound`, or None for a label
            whose values the code alone chooses (an outcome, a loop name).
    """

    def __init__(self, metric: M, bounds: tuple[LabelBound | None, ...]) -> None:
        self.metric: M = metric
        self.bounds = bounds
        # Children by their label values, for values that were kept as they are: the hot path
        # (a few labels() per job) is then one dict lookup. Bounded: only kept values enter.
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        """The child for these label values (positional, in the metric's label order), bounded."""
        child = self._children.get(values)
        if child is not None:
            return child
        bounded = tuple(
            value if bound is None else bound(value)
            for value, bound in zip(values, self.bounds, strict=True)
        )
        child = self.metric.labels(*bounded)
        if bounded == values:
            self._children[values] = child
        return child


class FinishedPerMinute:
    """Jobs this process ended ``done`` or ``failed``, per minute (Unix time // 60), over the
    last :data:`THROUGHPUT_MINUTES` minutes: what the process registry carries for the
    dashboard's throughput chart.

    Args:
        clock: Unix seconds.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.minutes: dict[int, list[int]] = {}

    def add(self, outcome: str) -> None:
        """Count one ended attempt; only ``done`` and ``failed`` are counted."""
        if outcome not in ("done", "failed"):
            return
        minute = int(self.clock() // 60)
        counts = self.minutes.get(minute)
        if counts is None:
            counts = self.minutes[minute] = [0, 0]
            for old in [m for m in self.minutes if m <= minute - THROUGHPUT_MINUTES]:
                del self.minutes[old]
        counts[0 if outcome == "done" else 1] += 1

    def snapshot(self) -> dict[str, list[int]]:
        """``{"<unix minute>": [done, failed]}`` of the last :data:`THROUGHPUT_MINUTES`
        minutes with any count."""
        first = int(self.clock() // 60) - THROUGHPUT_MINUTES + 1
        return {str(m): list(c) for m, c in self.minutes.items() if m >= first}


THROUGHPUT_MINUTES = 61
"""Minutes of throughput a process keeps and announces (the chart's hour, both ends partial)."""


@dataclass(frozen=True, slots=True)
class TableHealth:
    """What an operator of a PostgreSQL queue watches (``pg_stat_user_tables`` and
    ``pg_stat_activity``).

    Attributes:
        dead_tuples: dead row versions in ``jobs`` not yet vacuumed away (the claim walks past
            them until vacuum runs).
        live_tuples: live rows in ``jobs`` (the statistics' estimate).
        last_autovacuum: the last autovacuum of ``jobs`` (None: never).
        last_autoanalyze: the last autoanalyze of ``jobs`` (None: never).
        oldest_transaction_seconds: the age of the oldest transaction on the server that holds
            back vacuum (has a snapshot, ``backend_xmin``), in seconds; 0 when none.
    """

    dead_tuples: int
    live_tuples: int
    last_autovacuum: datetime | None
    last_autoanalyze: datetime | None
    oldest_transaction_seconds: float


@dataclass
class TableStats:
    """What the table gauges show: a snapshot taken at ``taken_at`` (monotonic seconds).

    Queue names are bounded already (see :meth:`Metrics.set_table_stats`): at most the label
    limit of them, plus :data:`OTHER` for the rest.

    Attributes:
        counts: ``{(queue, status): jobs}``.
        oldest_due_age_seconds: ``{queue: seconds}`` since the ``run_at`` of its oldest due
            ``todo`` job.
        without_worker: ``{(queue, task): jobs}`` of ``todo`` jobs that no live process can
            run (none serves the queue with the task).
    """

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_due_age_seconds: dict[str, float] = field(default_factory=dict)
    without_worker: dict[tuple[str, str], int] = field(default_factory=dict)
    taken_at: float = float("-inf")
    estimated: bool = False
    health: TableHealth | None = None


def _health_gauges(health: TableHealth | None) -> Iterator[Metric]:
    if health is None:
        return
    yield GaugeMetricFamily(
        "jobqueue_table_dead_tuples",
        "Dead row versions in the jobs table not yet vacuumed (pg_stat_user_tables).",
        value=health.dead_tuples,
    )
    yield GaugeMetricFamily(
        "jobqueue_table_live_tuples",
        "Live rows in the jobs table (the statistics' estimate).",
        value=health.live_tuples,
    )
    last = health.last_autovacuum
    yield GaugeMetricFamily(
        "jobqueue_table_last_autovacuum_timestamp_seconds",
        "Unix time of the last autovacuum of the jobs table (0: never).",
        value=0 if last is None else last.timestamp(),
    )
    yield GaugeMetricFamily(
        "jobqueue_oldest_transaction_age_seconds",
        "Age of the oldest transaction on the server that holds back vacuum (has a snapshot), "
        "seconds: while it runs, no dead row of the jobs table can be removed.",
        value=health.oldest_transaction_seconds,
    )


class _TableCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        stats = self.metrics.table_stats
        jobs = GaugeMetricFamily(
            "jobqueue_jobs",
            "Jobs in the table by queue and status: todo and in_progress counted exactly; done, "
            "failed and cancelled counted exactly up to 100,000 finished rows, above that the "
            "planner's estimate (jobqueue_jobs_estimated is 1 then).",
            labels=["queue", "status"],
        )
        for (queue, status), count in sorted(stats.counts.items()):
            jobs.add_metric([queue, status], count)
        yield jobs
        yield GaugeMetricFamily(
            "jobqueue_jobs_estimated",
            "1 when the done, failed and cancelled values of jobqueue_jobs are the planner's "
            "estimates (more than 100,000 finished rows), 0 when they are counts.",
            value=1 if stats.estimated else 0,
        )
        yield from _health_gauges(stats.health)
        oldest = GaugeMetricFamily(
            "jobqueue_oldest_todo_age_seconds",
            "Seconds since the run_at of the oldest due todo job, by queue (0 when none).",
            labels=["queue"],
        )
        for queue, age in sorted(stats.oldest_due_age_seconds.items()):
            oldest.add_metric([queue], age)
        yield oldest
        orphans = GaugeMetricFamily(
            "jobqueue_jobs_without_worker",
            "Todo jobs that no live process can run (none serves the queue with the task), by "
            "queue and task.",
            labels=["queue", "task"],
        )
        for (queue, task), count in sorted(stats.without_worker.items()):
            orphans.add_metric([queue, task], count)
        yield orphans
        busy, total = self.metrics.workers_seen
        yield GaugeMetricFamily(
            "jobqueue_workers_busy", "Runner slots of this process with a job.", value=busy
        )
        yield GaugeMetricFamily(
            "jobqueue_workers_total", "Runner slots of this process.", value=total
        )


class Metrics:
    """The metrics of one app. Hand it to the service and the worker pool.

    Args:
        workers: returns ``(busy, total)`` runner slots of this process (``(0, 0)`` when it runs
            no workers); called on the event loop, never from the thread that builds a scrape.
        label_limit: distinct values each ``queue`` and ``task`` label takes (per metric, the
            same ones in all); later values read as :data:`OTHER`.
    """

    def __init__(
        self,
        workers: Callable[[], tuple[int, int]] = lambda: (0, 0),
        label_limit: int = DEFAULT_LABEL_LIMIT,
    ) -> None:
        self.registry = CollectorRegistry()
        self.workers = workers
        self.workers_seen = (0, 0)
        self.table_stats = TableStats()
        self.throughput = FinishedPerMinute()
        self.queues = LabelBound(label_limit)
        self.tasks = LabelBound(label_limit)
        self.methods = LabelBound(len(HTTP_METHODS), fixed=HTTP_METHODS)
        queue, task, free = self.queues, self.tasks, None
        self.enqueued = BoundedMetric(
            Counter(
                "jobqueue_jobs_enqueued_total",
                "Jobs created, by queue and task.",
                ["queue", "task"],
                registry=self.registry,
            ),
            (queue, task),
        )
        self.finished = BoundedMetric(
            Counter(
                "jobqueue_jobs_finished_total",
                "Attempts that ended, by queue, task and outcome "
                "(done, failed, retried, cancelled, rescued).",
                ["queue", "task", "outcome"],
                registry=self.registry,
            ),
            (queue, task, free),
        )
        self.duration = BoundedMetric(
            Histogram(
                "jobqueue_job_duration_seconds",
                "Run time of an attempt in this process, seconds.",
                ["queue", "task"],
                buckets=DURATION_BUCKETS,
                registry=self.registry,
            ),
            (queue, task),
        )
        self.wait = BoundedMetric(
            Histogram(
                "jobqueue_job_wait_seconds",
                "From run_at to claim (pickup latency), seconds.",
                ["queue"],
                buckets=WAIT_BUCKETS,
                registry=self.registry,
            ),
            (queue,),
        )
        # Route templates and status codes are few by construction; the method is the client's.
        self.http_requests = BoundedMetric(
            Counter(
                "jobqueue_http_requests_total",
                "HTTP requests by method, route template and status code.",
                ["method", "route", "status"],
                registry=self.registry,
            ),
            (self.methods, free, free),
        )
        self.http_duration = BoundedMetric(
            Histogram(
                "jobqueue_http_request_duration_seconds",
                "HTTP request duration by method and route template, seconds.",
                ["method", "route"],
                buckets=HTTP_BUCKETS,
                registry=self.registry,
            ),
            (self.methods, free),
        )
        self.auth_failures = Counter(
            "jobqueue_auth_failures_total",
            "Requests refused by the access rules, by reason: missing, malformed, invalid_key, "
            "invalid_session (401); role, cross_site, csrf (403); host (421).",
            ["reason"],
            registry=self.registry,
        )
        self.http_refused = Counter(
            "jobqueue_http_refused_total",
            "Connections and requests refused at the HTTP edge before their body was handled, by "
            "reason: "
            "headers_timeout, headers_too_large, too_many_headers, idle_evicted, "
            "concurrency_limit, body_timeout, body_budget.",
            ["reason"],
            registry=self.registry,
        )
        self.leases_lost = BoundedMetric(
            Counter(
                "jobqueue_leases_lost_total",
                "Attempts whose lease this process lost (rescued, re-claimed or deleted), by "
                "queue and task; their outcome was dropped.",
                ["queue", "task"],
                registry=self.registry,
            ),
            (queue, task),
        )
        self.pruned = BoundedMetric(
            Counter(
                "jobqueue_jobs_pruned_total",
                "Finished jobs deleted by the pruner after their retention age, by queue and "
                "status (done, cancelled, failed).",
                ["queue", "status"],
                registry=self.registry,
            ),
            (queue, free),
        )
        self.schedule_slots = Counter(
            "jobqueue_schedule_slots_total",
            "Slots of schedules, by outcome: fired (its job created, or found by its key), "
            "failed (its job could not be created: logged schedule_fire_failed), skipped (a "
            "catch-up after downtime passed over older missed slots).",
            ["outcome"],
            registry=self.registry,
        )
        self.loop_restarts = Counter(
            "jobqueue_loop_restarts_total",
            "Background loops restarted by the supervisor after an unexpected error, by loop.",
            ["loop"],
            registry=self.registry,
        )
        self.lease_polls = Gauge(
            "jobqueue_lease_polls_waiting",
            "POST /leases requests of remote workers waiting for a job in this process now.",
            registry=self.registry,
        )
        self.registry.register(_TableCollector(self))
        self._exposition = b""
        self._exposition_at = float("-inf")
        self._building: asyncio.Task[bytes] | None = None

    def reserve(self, queues: Iterable[str], tasks: Iterable[str]) -> None:
        """Keep these label values before any seen later (call at start with the configured
        queues and the registered tasks, so that they never read as :data:`OTHER`)."""
        self.queues.reserve(sorted(queues))
        self.tasks.reserve(sorted(tasks))

    def count_finished(self, items: Iterable[tuple[str, str, str]]) -> None:
        """Count ended attempts given as ``(queue, task, outcome)`` triples (and the ``done``
        and ``failed`` ones per minute, for the registry: :attr:`throughput`)."""
        for queue, task, outcome in items:
            self.finished.labels(queue, task, outcome).inc()
            self.throughput.add(outcome)

    def table_stats_stale(self) -> bool:
        """True when the table gauges are older than ``TABLE_STATS_TTL_SECONDS``."""
        return time.monotonic() - self.table_stats.taken_at > TABLE_STATS_TTL_SECONDS

    def set_table_stats(
        self,
        counts: Mapping[tuple[str | None, str], int],
        oldest_due_age_seconds: Mapping[str | None, float],
        without_worker: Mapping[tuple[str | None, str], int],
        estimated: bool = False,
        health: TableHealth | None = None,
    ) -> None:
        """Store a new snapshot of the table gauges, taken now, with bounded labels.

        A queue given as None (the rest, already folded by the query) and every queue or task
        past its bound read as :data:`OTHER`; their counts add up, their ages keep the largest.

        Args:
            counts: ``{(queue, status): jobs}``.
            oldest_due_age_seconds: ``{queue: seconds}``.
            without_worker: ``{(queue, task): jobs}``.
            estimated: the finished counts are the planner's estimates.
            health: the jobs table's vacuum state and the oldest transaction.
        """
        folded_counts: dict[tuple[str, str], int] = {}
        for (queue, status), jobs in _largest_first(counts):
            key = (self._queue(queue), status)
            folded_counts[key] = folded_counts.get(key, 0) + jobs
        oldest: dict[str, float] = {}
        for queue, age in oldest_due_age_seconds.items():
            name = self._queue(queue)
            oldest[name] = max(oldest.get(name, 0.0), age)
        orphans: dict[tuple[str, str], int] = {}
        for (queue, task), jobs in _largest_first(without_worker):
            key = (self._queue(queue), self.tasks(task))
            orphans[key] = orphans.get(key, 0) + jobs
        self.table_stats = TableStats(
            folded_counts, oldest, orphans, time.monotonic(), estimated, health
        )

    def _queue(self, queue: str | None) -> str:
        return OTHER if queue is None else self.queues(queue)

    def exposition(self) -> bytes:
        """The Prometheus text format (version 0.0.4) of every metric, built now (blocking:
        async code calls :meth:`scrape`)."""
        self.workers_seen = self.workers()
        return generate_latest(self.registry)

    async def scrape(self) -> bytes:
        """:meth:`exposition`, built in a worker thread by one caller at a time and served from
        cache for ``EXPOSITION_TTL_SECONDS``.

        Concurrent callers await the same build; a caller cancelled meanwhile (its client left)
        does not cancel the build the others wait for.
        """
        loop = asyncio.get_running_loop()
        if loop.time() - self._exposition_at < EXPOSITION_TTL_SECONDS:
            return self._exposition
        if self._building is None:
            self.workers_seen = self.workers()  # on the loop: the pool is not thread-safe
            self._building = loop.create_task(self._build(), name="metrics-exposition")
        return await asyncio.shield(self._building)

    async def _build(self) -> bytes:
        try:
            data = await asyncio.to_thread(generate_latest, self.registry)
            self._exposition = data
            self._exposition_at = asyncio.get_running_loop().time()
            return data
        finally:
            self._building = None


K = TypeVar("K")


def _largest_first(items: Mapping[K, int]) -> list[tuple[K, int]]:
    """``items`` with the largest count first, so that the bound keeps the largest values."""
    return sorted(items.items(), key=lambda item: -item[1])
