"""Retry backoff: exponential ceiling, full jitter, never overflowing."""

from __future__ import annotations

import math
import random

import pytest

from jobqueue.backoff import ceiling_seconds, delay_seconds


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (11, 1024.0), (13, 3600.0)]
)
def test_ceiling_seconds_doubles_until_cap(attempt: int, ceiling: float) -> None:
    assert ceiling_seconds(attempt, 1.0, 3600.0) == ceiling


@pytest.mark.parametrize("attempt", [64, 1_000, 10**9])
def test_ceiling_seconds_huge_attempt_is_cap_not_overflow(attempt: int) -> None:
    assert ceiling_seconds(attempt, 1.0, 3600.0) == 3600.0


def test_delay_seconds_full_jitter_stays_within_ceiling() -> None:
    rng = random.Random(7)
    delays = [delay_seconds(4, 1.0, 3600.0, rng) for _ in range(1000)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert min(delays) < 1.0
    assert max(delays) > 7.0
    assert all(math.isfinite(d) for d in delays)


def test_delay_seconds_zero_base_is_zero() -> None:
    assert delay_seconds(5, 0.0, 3600.0) == 0.0
