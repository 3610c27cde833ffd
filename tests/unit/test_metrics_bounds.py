"""Metric label bounds and the cached exposition (no database): queue and task labels take at
most the limit's values, the rest fold into "other"; concurrent scrapes share one build."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from jobqueue.metrics import OTHER, Metrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: Metrics) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    }


def label_values(s: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (sample, labels) in s if sample == name}


def test_enqueued_past_label_limit_folds_queues_into_other() -> None:
    metrics = Metrics(label_limit=3)
    for i in range(10):
        metrics.enqueued.labels(f"q{i}", "echo").inc(i + 1)
    s = samples(metrics)
    name = "jobqueue_jobs_enqueued_total"
    assert label_values(s, name, "queue") == {"q0", "q1", "q2", OTHER}
    assert s[(name, (("queue", "q2"), ("task", "echo")))] == 3
    assert s[(name, (("queue", OTHER), ("task", "echo")))] == sum(range(4, 11))


def test_reserved_queues_keep_their_own_series_when_the_bound_is_full() -> None:
    metrics = Metrics(label_limit=2)
    metrics.reserve(queues=["default", "emails"], tasks=["echo"])
    metrics.enqueued.labels("invented", "echo").inc()
    metrics.enqueued.labels("emails", "echo").inc()
    s = samples(metrics)
    assert label_values(s, "jobqueue_jobs_enqueued_total", "queue") == {"emails", OTHER}


def test_worker_side_metrics_fold_queue_and_task_without_changing_call_sites() -> None:
    metrics = Metrics(label_limit=1)
    # The calls the worker pool and the rescuer make (worker/, maintenance/), unchanged.
    for i in range(3):
        metrics.leases_lost.labels(f"q{i}", f"t{i}").inc()
        metrics.wait.labels(f"q{i}").observe(0.1)
        metrics.duration.labels(f"q{i}", f"t{i}").observe(0.2)
        metrics.count_finished([(f"q{i}", f"t{i}", "done")])
    s = samples(metrics)
    lost = "jobqueue_leases_lost_total"
    assert s[(lost, (("queue", "q0"), ("task", "t0")))] == 1
    assert s[(lost, (("queue", OTHER), ("task", OTHER)))] == 2
    assert label_values(s, "jobqueue_job_wait_seconds_count", "queue") == {"q0", OTHER}
    assert label_values(s, "jobqueue_job_duration_seconds_count", "task") == {"t0", OTHER}
    finished = "jobqueue_jobs_finished_total"
    assert s[(finished, (("outcome", "done"), ("queue", OTHER), ("task", OTHER)))] == 2


def test_label_longer_than_200_characters_reads_as_other() -> None:
    metrics = Metrics(label_limit=100)
    metrics.enqueued.labels("q" * 201, "echo").inc()
    assert label_values(samples(metrics), "jobqueue_jobs_enqueued_total", "queue") == {OTHER}


def test_http_method_outside_the_standard_ones_reads_as_other() -> None:
    metrics = Metrics()
    for method in ("GET", "BREW", "PROPFIND", "X" * 1000):
        metrics.http_requests.labels(method, "unmatched", "405").inc()
    s = samples(metrics)
    assert label_values(s, "jobqueue_http_requests_total", "method") == {"GET", OTHER}
    route = (("method", OTHER), ("route", "unmatched"), ("status", "405"))
    assert s[("jobqueue_http_requests_total", route)] == 3


def test_table_stats_fold_rest_and_past_limit_summing_counts_and_keeping_oldest_age() -> None:
    metrics = Metrics(label_limit=2)
    metrics.reserve(queues=["default"], tasks=["echo"])
    metrics.set_table_stats(
        counts={
            ("default", "todo"): 1,
            ("big", "todo"): 50,
            ("small", "todo"): 2,
            (None, "todo"): 1000,  # the queries' rest
        },
        oldest_due_age_seconds={"default": 1.0, "big": 5.0, "small": 9.0, None: 7.0},
        without_worker={("small", "echo"): 2, (None, "echo"): 1000, ("big", "nope"): 50},
    )
    stats = metrics.table_stats
    assert stats.counts == {("default", "todo"): 1, ("big", "todo"): 50, (OTHER, "todo"): 1002}
    assert stats.oldest_due_age_seconds == {"default": 1.0, "big": 5.0, OTHER: 9.0}
    assert stats.without_worker == {(OTHER, "echo"): 1002, ("big", "nope"): 50}


class CountingCollector(Collector):
    """Counts how often the registry is collected (once per exposition built)."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterator[Metric]:
        self.calls += 1
        yield GaugeMetricFamily("test_builds", "Builds so far.", value=self.calls)


async def test_scrape_300_concurrent_callers_share_one_build() -> None:
    metrics = Metrics()
    counter = CountingCollector()
    metrics.registry.register(counter)
    bodies = await asyncio.gather(*(metrics.scrape() for _ in range(300)))
    assert counter.calls == 1
    assert len(set(bodies)) == 1
    assert b"test_builds 1.0" in bodies[0]


async def test_scrape_cancelled_caller_does_not_cancel_the_shared_build() -> None:
    metrics = Metrics()
    first = asyncio.ensure_future(metrics.scrape())
    second = asyncio.ensure_future(metrics.scrape())
    await asyncio.sleep(0)  # both are waiting on the build now
    first.cancel()
    body = await second
    assert first.cancelled()
    assert b"jobqueue_workers_total" in body
