"""Retry backoff: exponential with full jitter (standard library only).

``delay = uniform(0, min(cap, base * 2 ** (attempt - 1)))``: the "Full Jitter" policy from AWS's
"Exponential Backoff And Jitter" (2015), which Oban and River also use in spirit. Full jitter
spreads a burst of failures over the whole window instead of re-synchronising them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# 2 ** 62 is far past any sane cap; clamping the exponent keeps the float finite for any attempt.
_MAX_EXPONENT = 62


def ceiling_seconds(attempt: int, base_seconds: float, max_seconds: float) -> float:
    """The upper bound of the delay after failed attempt number ``attempt`` (1-based), in seconds.

    Args:
        attempt: the attempt that just failed, 1 for the first; values below 1 count as 1.
        base_seconds: the ceiling after the first failure, in seconds (>= 0).
        max_seconds: the cap on the ceiling, in seconds (>= 0).

    Returns:
        ``min(max_seconds, base_seconds * 2 ** (attempt - 1))``; finite for any ``attempt``.
    """
    exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
    return min(max_seconds, base_seconds * float(2**exponent))


def delay_seconds(
    attempt: int,
    base_seconds: float = 1.0,
    max_seconds: float = 3600.0,
    rng: random.Random | None = None,
) -> float:
    """The delay before the next attempt after attempt number ``attempt`` failed, in seconds.

    Args:
        attempt: the attempt that just failed, 1-based.
        base_seconds: see :func:`ceiling_seconds`.
        max_seconds: see :func:`ceiling_seconds`.
        rng: a random source (tests pass a seeded one); the module's by default.

    Returns:
        A float in ``[0, ceiling_seconds(attempt, base_seconds, max_seconds)]``.
    """
    ceiling = ceiling_seconds(attempt, base_seconds, max_seconds)
    return (rng or random).uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff parameters of a process, in seconds (``JOBQUEUE_BACKOFF_*``).

    Attributes:
        base_seconds: the ceiling after the first failure (see :func:`ceiling_seconds`).
        max_seconds: the cap on the ceiling.
    """

    base_seconds: float = 1.0
    max_seconds: float = 3600.0

    def delay_after(self, attempt: int) -> float:
        """A full-jitter delay after failed attempt ``attempt``, in seconds."""
        return delay_seconds(attempt, self.base_seconds, self.max_seconds)
