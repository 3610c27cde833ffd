"""The lease client a remote worker needs (``jobqueue.client.AsyncJobQueue``), as protocols: a
test passes a fake."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from jobqueue.client._errors import ConnectionFailed, ServiceUnavailable, TooManyRequests

# Answers after which nothing was done and a later try may work: back off and try again.
SERVICE_DOWN = (ServiceUnavailable, ConnectionFailed, TooManyRequests)


class LeasedJobLike(Protocol):
    """A leased job, as ``AsyncJobQueue.lease`` gives it (``LeasedJob``)."""

    @property
    def id(self) -> int: ...
    @property
    def queue(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def payload(self) -> Any: ...
    @property
    def attempt(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def timeout_seconds(self) -> float: ...


class LeaseLike(Protocol):
    """One lease (``Lease``): its opaque token, its job, its length and heartbeat interval."""

    @property
    def token(self) -> str: ...
    @property
    def job(self) -> LeasedJobLike: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def lease_seconds(self) -> float: ...
    @property
    def heartbeat_seconds(self) -> float: ...


class LeaseBatchLike(Protocol):
    """The answer of ``POST /leases`` (``LeaseBatch``)."""

    @property
    def leases(self) -> Sequence[LeaseLike]: ...
    @property
    def drain(self) -> bool: ...
    @property
    def completed(self) -> Sequence[ReportLike]: ...
    @property
    def failed(self) -> Sequence[ReportLike]: ...


class HeartbeatItemLike(Protocol):
    """One lease in a heartbeat's answer; ``status`` is ``extended``, ``lost`` or ``busy``."""

    @property
    def token(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def cancel_requested(self) -> bool: ...


class HeartbeatAnswerLike(Protocol):
    """The answer of ``POST /leases/heartbeat`` (``HeartbeatAnswer``)."""

    @property
    def leases(self) -> Sequence[HeartbeatItemLike]: ...
    @property
    def drain(self) -> bool: ...


class ReportLike(Protocol):
    """The answer of complete, fail and release (``Report``)."""

    @property
    def job_id(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def repeated(self) -> bool: ...
    @property
    def token(self) -> str | None: ...


class LeaseClient(Protocol):
    """The lease methods of ``jobqueue.client.AsyncJobQueue`` the worker calls; a test passes
    a fake. Reports go in batches (``POST /leases/complete``, ``/fail``, ``/release``, or
    carried by a lease call's ``complete`` and ``fail``): a lost
    lease is an item with ``status`` ``lease_lost``. Errors: ``ServiceUnavailable`` (503),
    ``TooManyRequests`` (429), ``ConnectionFailed`` (transport), other ``ApiError``s (4xx/5xx;
    a batch refused with 422 wrote nothing)."""

    async def lease(
        self,
        queues: Sequence[str],
        *,
        tasks: Sequence[str] | None = None,
        max_jobs: int = 1,
        lease_seconds: float | None = None,
        wait_seconds: float = 0.0,
        worker: str | dict[str, Any] | None = None,
        complete: Iterable[tuple[str, Any]] = (),
        fail: Iterable[Mapping[str, Any]] = (),
    ) -> LeaseBatchLike: ...

    async def heartbeat(
        self, tokens: Sequence[str], lease_seconds: float | None = None
    ) -> HeartbeatAnswerLike: ...

    async def complete_many(self, items: Iterable[tuple[str, Any]]) -> Sequence[ReportLike]: ...

    async def fail_many(self, failures: Iterable[Mapping[str, Any]]) -> Sequence[ReportLike]: ...

    async def release_many(self, tokens: Sequence[str]) -> Sequence[ReportLike]: ...

    async def aclose(self) -> None: ...
