"""What the lease API's use cases take and give back, and the lease token (standard library
only). See ``_remote.py`` for the token's design."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from jobqueue.errors import LeaseLost, LeaseNotFound
from jobqueue.jobs import AttemptKey, ClaimedJob

TOKEN_PREFIX = "jl1."
MAX_TOKEN_CHARS = 512
MAX_WAIT_SECONDS = 20.0
"""The longest long-poll, seconds (as SQS's): a worker polling back to back renews its registry
row well within :data:`jobqueue.db.registry.PROCESS_LIVE_SECONDS`."""
MIN_LEASE_SECONDS = 1.0
MAX_LEASE_SECONDS = 3600.0
MAX_QUEUES = 32
MAX_TASKS = 256
MAX_JOBS = 1000
MAX_TOKENS = 1000
"""Tokens in one batch call (heartbeat, complete, fail, release)."""
ANNOUNCE_SECONDS = 5.0
"""The longest time between two registry writes for one remote worker, seconds."""
MAX_ANNOUNCED = 10_000
"""Remote workers whose last announcement this process remembers (oldest forgotten first)."""
WORKER_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,100}$")
HOST_NAME = re.compile(r"^[\x21-\x7e]{1,255}$")
DRAIN_HINT = "the service is shutting down"


@dataclass(frozen=True, slots=True)
class LeaseToken:
    """What a lease token encodes.

    Attributes:
        job_id, attempt: the attempt it leases.
        lease_ms: the lease length a heartbeat renews, milliseconds.
        worker_id: ``<key name>/<worker name>``, the fence's worker id.
    """

    job_id: int
    attempt: int
    lease_ms: int
    worker_id: str

    @property
    def key(self) -> AttemptKey:
        """``(job_id, attempt)``."""
        return (self.job_id, self.attempt)

    @property
    def key_name(self) -> str:
        """The API key name the lease belongs to."""
        return self.worker_id.partition("/")[0]

    def encode(self) -> str:
        """The opaque token: ``jl1.`` and URL-safe base64 without padding."""
        raw = f"{self.job_id}.{self.attempt}.{self.lease_ms}.{self.worker_id}"
        return TOKEN_PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, key_name: str) -> LeaseToken:
        """The token ``text``, when it is well formed and belongs to ``key_name``.

        Raises:
            LeaseNotFound: malformed, or another key's.
        """
        if not text.startswith(TOKEN_PREFIX) or len(text) > MAX_TOKEN_CHARS:
            raise LeaseNotFound(_NO_SUCH_LEASE)
        body = text[len(TOKEN_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
            job_id, attempt, lease_ms, worker_id = raw.split(".", 3)
            token = cls(int(job_id), int(attempt), int(lease_ms), worker_id)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise LeaseNotFound(_NO_SUCH_LEASE) from None
        valid = (
            0 < token.job_id < 2**63
            and 0 < token.attempt < 2**31
            and 0 < token.lease_ms <= MAX_LEASE_SECONDS * 1000
            and _WORKER_ID.match(token.worker_id) is not None
        )
        if not valid or token.key_name != key_name or token.encode() != text:
            raise LeaseNotFound(_NO_SUCH_LEASE)
        return token


_WORKER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}/[A-Za-z0-9_.:@-]{1,100}$")
"""``<key name>/<worker name>``: what the service writes, nothing else (a token with another
worker id, e.g. holding U+0000, is not one it issued)."""

_NO_SUCH_LEASE = "no such lease: the token is malformed or was not issued to this API key"


@dataclass(frozen=True, slots=True)
class RemoteWorker:
    """A remote worker as its lease calls describe it.

    Attributes:
        name: 1-100 of ``A-Za-z0-9_.:@-``, unique per worker process.
        host: where it runs (the client's address when it does not say).
        slots: how many jobs it runs at once (the request's ``max_jobs`` when it does not say).
    """

    name: str
    host: str
    slots: int


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls the lease API.

    Attributes:
        key_name: the API key's name (``anonymous`` without keys).
        queues: the only queues the key may lease from; None: any.
    """

    key_name: str
    queues: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """``POST /leases``, checked by the route (bounds in this module's constants).

    Attributes:
        queues: the queues to lease from, in this order.
        tasks: only jobs of these tasks; None: any task.
        max_jobs: at most this many leases.
        lease_seconds: each lease's length, seconds.
        wait_seconds: the longest wait for a job when none is due, seconds.
        worker: who asks.
    """

    queues: tuple[str, ...]
    tasks: tuple[str, ...] | None
    max_jobs: int
    lease_seconds: float
    wait_seconds: float
    worker: RemoteWorker


@dataclass(frozen=True, slots=True)
class Granted:
    """One lease given out.

    Attributes:
        token: the opaque lease token.
        job: the job.
        expires_at: when the lease ends unless renewed (UTC; this process's clock, for
            information: the database's clock decides).
        lease_seconds: the lease length, seconds.
        heartbeat_seconds: how often to renew it, seconds (a third of the lease).
    """

    token: str
    job: ClaimedJob
    expires_at: datetime
    lease_seconds: float
    heartbeat_seconds: float


@dataclass(frozen=True, slots=True)
class Renewal:
    """One lease's heartbeat: ``status`` is ``extended``, ``lost`` or ``busy`` (locked by a
    concurrent write: neither extended nor lost; send it again)."""

    token: str
    status: str
    cancel_requested: bool
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Report:
    """What a complete, fail or release did.

    Attributes:
        token: the lease token.
        job_id, attempt: the attempt the token names.
        status: the job's status written (``done``, ``todo``, ``failed``, ``cancelled``), or
            ``lease_lost`` (nothing written).
        repeated: the same report had been written before (a retry after a lost answer).
        current: for ``lease_lost``, the job's status now (None when it is gone).
    """

    token: str
    job_id: int
    attempt: int
    status: str
    repeated: bool = False
    current: str | None = None

    def raise_lost(self) -> Report:
        """``self``, or :class:`LeaseLost` when the lease was lost (the single-lease routes)."""
        if self.status == LEASE_LOST:
            raise LeaseLost(self.job_id, self.attempt, self.current)
        return self


LEASE_LOST = "lease_lost"


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure as a remote worker reports it (``POST /leases/…/fail``)."""

    error_type: str = "Error"
    message: str = ""
    traceback: str | None = None
    retryable: bool = True
    retry_delay_seconds: float | None = None
