"""Heartbeat: one UPDATE extends the leases of all jobs this process holds.

It beats every third of the lease, so two beats can fail before a lease runs out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import repository
from jobqueue.db.engine import connect
from jobqueue.errors import DatabaseUnavailable
from jobqueue.worker.state import Holdings

log = structlog.get_logger(__name__)


async def beat_once(
    engine: AsyncEngine, holdings: Holdings, worker_id: str, lease_seconds: float
) -> set[int]:
    """Extend every held lease once.

    A lease that was lost (rescued, or the row is gone) is noticed by the completer, whose
    fenced write then finds nothing to update and logs ``lease_lost``.

    Returns:
        the ids whose cancellation was requested.
    """
    job_ids = list(holdings.jobs)
    if not job_ids:
        return set()
    async with connect(engine) as conn:
        _, cancel = await repository.heartbeat(conn, job_ids, worker_id, lease_seconds)
    return cancel


async def heartbeat_loop(
    engine: AsyncEngine,
    holdings: Holdings,
    worker_id: str,
    lease_seconds: float,
    on_cancel_requested: Callable[[set[int]], None],
) -> None:
    """Beat every ``lease_seconds / 3`` seconds until cancelled.

    ``on_cancel_requested`` gets the ids whose cancellation was requested: the safety net for
    a cancel NOTIFY missed while the LISTEN connection was down.
    """
    while True:
        await asyncio.sleep(lease_seconds / 3)
        try:
            cancel = await beat_once(engine, holdings, worker_id, lease_seconds)
        except DatabaseUnavailable as exc:
            log.warning("heartbeat_failed", error=str(exc), held=len(holdings.jobs))
            continue
        except Exception:  # a loop boundary: log, and beat again next time
            log.exception("heartbeat_error", held=len(holdings.jobs))
            continue
        if cancel:
            on_cancel_requested(cancel)
