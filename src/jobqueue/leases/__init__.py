"""The lease use cases: claim, heartbeat, finish (with the outcome classifier and the retry
policy), release and rescue.

The only package that writes a job's lease columns. Two kinds of client call the same
functions: the in-process worker pool (through :class:`PostgresLeases`, a :class:`LeaseStore`)
and, later, an HTTP lease API for workers in any language (the functions on a connection).

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
    "MAX_ERROR_CHARS",
    "MAX_FINISH_BATCH",
    "MAX_RESULT_BYTES",
    "MAX_RESULT_DEPTH",
    "RESCUE_BATCH",
    "ClaimSpec",
    "FinishResult",
    "HeartbeatResult",
    "LeaseStore",
    "PostgresLeases",
    "Refused",
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
