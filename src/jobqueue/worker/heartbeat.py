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
) -> tuple[set[int], set[int]]:
    """Extend every held lease once.

    Returns:
        ``(lost, cancel_requested)``: ids whose lease could not be extended (no longer ours),
        and ids whose cancellation was requested.
    """
    job_ids = list(holdings.jobs)
    if not job_ids:
        return set(), set()
    async with connect(engine) as conn:
        extended, cancel = await repository.heartbeat(conn, job_ids, worker_id, lease_seconds)
    # A job written or released during the UPDATE is not lost, only gone.
    lost = {job_id for job_id in job_ids if job_id not in extended and job_id in holdings.jobs}
    return lost, cancel


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
            lost, cancel = await beat_once(engine, holdings, worker_id, lease_seconds)
        except DatabaseUnavailable as exc:
            log.warning("heartbeat_failed", error=str(exc), held=len(holdings.jobs))
            continue
        for job_id in lost:
            log.warning("lease_lost", job_id=job_id, during="heartbeat")
        if cancel:
            on_cancel_requested(cancel)
