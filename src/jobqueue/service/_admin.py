"""Admin actions: cancel and retry, each one transaction with its NOTIFY."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import queries
from jobqueue.db.engine import write
from jobqueue.errors import JobNotFound, JobStateConflict
from jobqueue.jobs import Job, JobStatus
from jobqueue.metrics import Metrics
from jobqueue.notify import CHANNEL, CancelRequested, JobsFinished, encode, protocol


def _notice(payload: str) -> queries.Notice:
    return queries.Notice(CHANNEL, payload)


class Admin:
    """Cancel and retry.

    Args:
        engine: the process's engine.
        metrics: a cancelled ``todo`` job is counted in ``jobqueue_jobs_finished_total``.
        requeued: told ``{queue: 0.0}`` after a retry commits (wakes the local claimer).
        origin: this app's NOTIFY origin tag (its own listener skips the retry's message).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        metrics: Metrics,
        requeued: Callable[[dict[str, float]], None],
        origin: str | None = None,
    ) -> None:
        self.engine = engine
        self.origin = origin
        self.metrics = metrics
        self.requeued = requeued

    async def cancel(self, job_id: int) -> Job:
        """Cancel a job: ``todo`` becomes ``cancelled`` at once; for an ``in_progress`` job the
        request is recorded and sent (NOTIFY) to the process running it, which cancels the
        attempt (the job then ends ``cancelled``; an attempt that completes first wins).
        Cancelling a ``cancelled`` job changes nothing.

        Returns:
            the job after the call (``in_progress`` with ``cancel_requested_at`` set for a
            running one).

        Raises:
            JobNotFound; JobStateConflict for a ``done`` or ``failed`` job;
            DatabaseUnavailable.
        """
        async with write(self.engine) as conn:
            job = await queries.lock_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job.status is JobStatus.TODO:
                job = await queries.cancel_todo(conn, job_id)
                await queries.notify(conn, _notice(encode(JobsFinished(frozenset({job_id})))))
                if job is not None:
                    self.metrics.count_finished([(job.queue, job.task, "cancelled")])
            elif job.status is JobStatus.IN_PROGRESS:
                job = await queries.request_cancel(conn, job_id)
                payload = encode(CancelRequested(frozenset({job_id})))
                await queries.notify(conn, _notice(payload))
            elif job.status is not JobStatus.CANCELLED:
                raise JobStateConflict(job_id, job.status, "cancelled", ["todo", "in_progress"])
        assert job is not None  # the row is locked: its status cannot have changed
        return job

    async def retry(self, job_id: int) -> Job:
        """Put a ``failed`` or ``cancelled`` job back to ``todo`` with fresh attempts (its
        attempt history stays).

        Raises:
            JobNotFound; JobStateConflict for any other status; DatabaseUnavailable.
        """
        async with write(self.engine) as conn:
            job = await queries.lock_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            retried = await queries.retry_job(conn, job_id)
            if retried is None:
                raise JobStateConflict(job_id, job.status, "retried", ["failed", "cancelled"])
            await queries.notify(
                conn, _notice(protocol.queues_runnable([retried.queue], self.origin))
            )
        self.requeued({retried.queue: 0.0})
        return retried
