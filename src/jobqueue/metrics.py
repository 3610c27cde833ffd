"""Prometheus metrics (prometheus-client), one registry per app.

Every name is documented in ``docs/metrics.md``. Counters and histograms are updated where the
event happens (the service on enqueue, the completer on each written batch, the runner per
attempt, the rescuer); the gauges about the table (jobs per queue and status, the age of the
oldest due job) come from two grouped queries run at scrape time and cached for
``TABLE_STATS_TTL_SECONDS``, so a scrape costs the database at most one query pair however often
Prometheus and dashboards ask.

One process, one registry: jobqueue runs one uvicorn process per replica (scale out with more
replicas, each scraped on its own), so prometheus-client's multiprocess mode is not needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

TABLE_STATS_TTL_SECONDS = 2.0
"""How long the table gauges are served from cache, in seconds."""

# Job run times span milliseconds (no-op jobs) to minutes (reports, webhooks with retries).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Pickup latency: milliseconds when idle, seconds to hours when a backlog builds up.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800, 3600)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


@dataclass
class TableStats:
    """What the table gauges show: a snapshot taken at ``taken_at`` (monotonic seconds).

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


class _TableCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        stats = self.metrics.table_stats
        jobs = GaugeMetricFamily(
            "jobqueue_jobs", "Jobs in the table by queue and status.", labels=["queue", "status"]
        )
        for (queue, status), count in sorted(stats.counts.items()):
            jobs.add_metric([queue, status], count)
        yield jobs
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
        busy, total = self.metrics.workers()
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
            no workers).
    """

    def __init__(self, workers: Callable[[], tuple[int, int]] = lambda: (0, 0)) -> None:
        self.registry = CollectorRegistry()
        self.workers = workers
        self.table_stats = TableStats()
        self.enqueued = Counter(
            "jobqueue_jobs_enqueued_total",
            "Jobs created, by queue and task.",
            ["queue", "task"],
            registry=self.registry,
        )
        self.finished = Counter(
            "jobqueue_jobs_finished_total",
            "Attempts that ended, by queue, task and outcome "
            "(done, failed, retried, cancelled, rescued).",
            ["queue", "task", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "jobqueue_job_duration_seconds",
            "Run time of an attempt in this process, seconds.",
            ["queue", "task"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.wait = Histogram(
            "jobqueue_job_wait_seconds",
            "From run_at to claim (pickup latency), seconds.",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "jobqueue_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "jobqueue_http_request_duration_seconds",
            "HTTP request duration by method and route template, seconds.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
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
            "Connections and requests refused at the HTTP edge before the app ran, by reason: "
            "headers_timeout, headers_too_large, too_many_headers, idle_evicted, "
            "concurrency_limit, body_budget.",
            ["reason"],
            registry=self.registry,
        )
        self.leases_lost = Counter(
            "jobqueue_leases_lost_total",
            "Attempts whose lease this process lost (rescued, re-claimed or deleted), by queue "
            "and task; their outcome was dropped.",
            ["queue", "task"],
            registry=self.registry,
        )
        self.loop_restarts = Counter(
            "jobqueue_loop_restarts_total",
            "Background loops restarted by the supervisor after an unexpected error, by loop.",
            ["loop"],
            registry=self.registry,
        )
        self.registry.register(_TableCollector(self))

    def count_finished(self, items: Iterable[tuple[str, str, str]]) -> None:
        """Count ended attempts given as ``(queue, task, outcome)`` triples."""
        for queue, task, outcome in items:
            self.finished.labels(queue, task, outcome).inc()

    def table_stats_stale(self) -> bool:
        """True when the table gauges are older than ``TABLE_STATS_TTL_SECONDS``."""
        return time.monotonic() - self.table_stats.taken_at > TABLE_STATS_TTL_SECONDS

    def exposition(self) -> bytes:
        """The Prometheus text format (version 0.0.4) of every metric."""
        return generate_latest(self.registry)
