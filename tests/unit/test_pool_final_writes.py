"""The pool's last writes at shutdown survive any driver error (pgbouncer can drop a prepared
statement with its server connection: ``InvalidSQLStatementNameError``)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import structlog

from jobqueue.jobs import AttemptKey, ClaimedJob, JobStatus, Outcome
from jobqueue.leases import ClaimSpec, FinishResult
from jobqueue.tasks.registry import TaskRegistry
from jobqueue.worker import PoolConfig, WorkerPool
from tests.fakes import InMemoryLeases


class VanishedStatements(InMemoryLeases):
    """Every write fails as behind pgbouncer when the prepared statement is gone."""

    async def finish(
        self, outcomes: Sequence[Outcome], claim_spec: ClaimSpec | None
    ) -> FinishResult:
        raise asyncpg.InvalidSQLStatementNameError(
            'prepared statement "__asyncpg_1__" does not exist'
        )

    async def release(self, keys: Sequence[AttemptKey]) -> set[AttemptKey]:
        raise asyncpg.InvalidSQLStatementNameError(
            'prepared statement "__asyncpg_2__" does not exist'
        )


def _job(job_id: int) -> ClaimedJob:
    return ClaimedJob(
        id=job_id,
        queue="default",
        task="echo",
        payload={},
        attempt=1,
        max_attempts=3,
        timeout_seconds=30.0,
        wait_seconds=0.0,
    )


async def test_pool_final_writes_driver_error_is_logged_and_the_stop_ends() -> None:
    store = VanishedStatements()
    pool = WorkerPool(None, TaskRegistry(), PoolConfig(queues={"default": 2}), store=store)
    coordinator = pool.coordinator
    coordinator.held[(1, 1)] = _job(1)
    coordinator.held[(2, 1)] = _job(2)
    coordinator.pending.append(Outcome(1, 1, JobStatus.DONE, result_json="null"))
    with structlog.testing.capture_logs() as logs:
        await pool.final_writes()
    events = [entry["event"] for entry in logs]
    assert events.count("outcome_flush_failed") >= 1
    assert "release_failed" in events
    assert (2, 1) not in coordinator.held  # given up: the rescuer returns it after its lease
    assert events[-1] == "pool_stopped"
