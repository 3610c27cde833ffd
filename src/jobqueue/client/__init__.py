"""jobqueue's Python client: :class:`JobQueue` (sync) and :class:`AsyncJobQueue` (asyncio).

It needs only the standard library and httpx (an import contract keeps the rest of jobqueue
out), so a machine that only enqueues jobs, or runs them as a remote worker over the lease
protocol (docs/workers.md), imports none of the server's stack::

    from jobqueue.client import JobQueue

    with JobQueue("http://127.0.0.1:8000", key=None) as jq:
        job = jq.enqueue("echo", {"n": 1})
        print(jq.wait(job.id, timeout=30))    # {'echo': {'n': 1}}
        for done in jq.list(status="done", limit=10):
            print(done.id, done.finished_at)

Answers are frozen dataclasses (:class:`Job`, :class:`Queue`, :class:`Lease`, ...), errors
one tree under :class:`JobQueueClientError` (see ``_errors.py``).
"""

from jobqueue.client._async import AsyncJobQueue
from jobqueue.client._errors import (
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    IdempotencyConflict,
    JobCancelled,
    JobFailed,
    JobQueueClientError,
    LeaseLost,
    NotFound,
    ServerError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from jobqueue.client._leases import (
    Failure,
    HeartbeatAnswer,
    HeartbeatItem,
    Lease,
    LeaseBatch,
    LeasedJob,
    Report,
)
from jobqueue.client._models import (
    Attempt,
    Job,
    JobPage,
    JobSpec,
    ProcessInfo,
    ProcessList,
    Queue,
    QueueState,
    Schedule,
)
from jobqueue.client._sync import JobQueue
from jobqueue.client._worker import (
    Discard,
    RemoteTasks,
    RetryLater,
    TaskContext,
    Worker,
    default_tasks,
    remote_task,
)

__all__ = [
    "ApiError",
    "AsyncJobQueue",
    "Attempt",
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Discard",
    "Failure",
    "Forbidden",
    "HeartbeatAnswer",
    "HeartbeatItem",
    "IdempotencyConflict",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobPage",
    "JobQueue",
    "JobQueueClientError",
    "JobSpec",
    "Lease",
    "LeaseBatch",
    "LeaseLost",
    "LeasedJob",
    "NotFound",
    "ProcessInfo",
    "ProcessList",
    "Queue",
    "QueueState",
    "RemoteTasks",
    "Report",
    "RetryLater",
    "Schedule",
    "ServerError",
    "ServiceUnavailable",
    "TaskContext",
    "TooManyRequests",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
    "Worker",
    "default_tasks",
    "remote_task",
]
