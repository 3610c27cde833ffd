"""Refusals at the HTTP edge, counted and logged the same way wherever they happen: in the
connection guard (``api/edge.py``: the head's time, size and header count, idle eviction, the
concurrency limit) and in the body limits (``api/limits.py``: the body's time and the budget of
bytes in flight).

Each is counted in ``jobqueue_http_refused_total{reason}`` and logged as ``http_refused`` with
its reason and the client's address, at most once a second per reason (a client can cause any
of them at will: a flood costs a few log lines, each saying how many were left out).
"""

from __future__ import annotations

from typing import Any

from jobqueue.logs import Throttled
from jobqueue.metrics import Metrics

REASONS = (
    "headers_timeout",
    "headers_too_large",
    "too_many_headers",
    "idle_evicted",
    "concurrency_limit",
    "body_timeout",
    "body_budget",
)
"""Every ``reason`` a refusal is counted under (a fixed set: a bounded metric label)."""


class EdgeEvents:
    """Counts and logs (throttled) refusals at the HTTP edge.

    Args:
        metrics: the app's metrics, or None (nothing is counted).
    """

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self._logs = {reason: Throttled("http_refused") for reason in REASONS}

    def refused(self, reason: str, client: tuple[str, int] | None, **fields: Any) -> None:
        """Count one refusal of ``reason`` (one of :data:`REASONS`) and log it unless one of
        the same reason was logged in the last second."""
        if self.metrics is not None:
            self.metrics.http_refused.labels(reason).inc()
        self._logs[reason](reason=reason, client=client[0] if client else None, **fields)
