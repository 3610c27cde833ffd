"""The lease use cases: claim, heartbeat, finish (with the outcome classifier and the retry
policy), release and rescue.

The only package that writes a job's lease columns. Two kinds of client call the same
functions: the in-process worker pool (through :class:`PostgresLeases`, a :class:`LeaseStore`)
and the HTTP lease API for workers in any language (:class:`RemoteLeases`, ``_remote.py``).

The lease life cycle::

    claim ─► in_progress, attempt n, lease = now + lease_seconds
      │  heartbeat every lease/3: lease = now + lease_seconds (an expired lease is lost)
      ├─ finish (fenced by worker and attempt) ─► done | todo (retry, backoff) | failed | cancelled
      ├─ release (shutdown, fenced) ─────────────► todo, the attempt not counted
      └─ lease expired ─► rescue (any process) ─► todo | failed (no attempts left) | cancelled
"""

from jobqueue.backoff import RetryPolicy
from jobqueue.leases._outcomes import (
    MAX_ERROR_CHARS,
    MAX_RESULT_BYTES,
    MAX_RESULT_DEPTH,
    ResultTooDeep,
    ResultTooLarge,
    cancelled,
    describe_error,
    encode_result,
    failed,
    succeeded,
)
from jobqueue.leases._remote import RemoteLeases
from jobqueue.leases._remote_types import (
    LEASE_LOST,
    MAX_JOBS,
    MAX_LEASE_SECONDS,
    MAX_QUEUES,
    MAX_TASKS,
    MAX_TOKEN_CHARS,
    MAX_TOKENS,
    MAX_WAIT_SECONDS,
    MIN_LEASE_SECONDS,
    WORKER_NAME,
    Caller,
    Failure,
    Granted,
    LeaseRequest,
    LeaseToken,
    RemoteWorker,
    Renewal,
    Report,
)
from jobqueue.leases._store import (
    MAX_FINISH_BATCH,
    RESCUE_BATCH,
    LeaseStore,
    PostgresLeases,
    claim,
    finish,
    heartbeat,
    release,
    rescue,
)
from jobqueue.leases._types import ClaimSpec, FinishResult, HeartbeatResult, Refused, Rescued

__all__ = [
    "LEASE_LOST",
    "MAX_ERROR_CHARS",
    "MAX_FINISH_BATCH",
    "MAX_JOBS",
    "MAX_LEASE_SECONDS",
    "MAX_QUEUES",
    "MAX_RESULT_BYTES",
    "MAX_RESULT_DEPTH",
    "MAX_TASKS",
    "MAX_TOKENS",
    "MAX_TOKEN_CHARS",
    "MAX_WAIT_SECONDS",
    "MIN_LEASE_SECONDS",
    "RESCUE_BATCH",
    "WORKER_NAME",
    "Caller",
    "ClaimSpec",
    "Failure",
    "FinishResult",
    "Granted",
    "HeartbeatResult",
    "LeaseRequest",
    "LeaseStore",
    "LeaseToken",
    "PostgresLeases",
    "Refused",
    "RemoteLeases",
    "RemoteWorker",
    "Renewal",
    "Report",
    "Rescued",
    "ResultTooDeep",
    "ResultTooLarge",
    "RetryPolicy",
    "cancelled",
    "claim",
    "describe_error",
    "encode_result",
    "failed",
    "finish",
    "heartbeat",
    "release",
    "rescue",
    "succeeded",
]
