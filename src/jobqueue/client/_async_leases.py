"""The lease protocol's methods of :class:`AsyncJobQueue` (docs/workers.md); each does what
the :class:`JobQueue` method of the same name does, awaited."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from jobqueue.client import _calls as calls
from jobqueue.client._base import queue_list, token_list
from jobqueue.client._leases import Failure, HeartbeatAnswer, LeaseBatch, Report
from jobqueue.client._retry import Call

T = TypeVar("T")


class AsyncLeaseMethods:
    """Lease, heartbeat and report jobs: what a remote worker calls. Mixed into
    :class:`AsyncJobQueue`, which sends the calls."""

    timeout: float

    async def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    async def lease(
        self,
        queues: str | Sequence[str],
        *,
        tasks: Sequence[str] | None = None,
        max_jobs: int = 1,
        lease_seconds: float | None = None,
        wait_seconds: float = 0.0,
        worker: str | Mapping[str, Any] | None = None,
        complete: Iterable[tuple[str, Any]] = (),
        fail: Iterable[Failure | Mapping[str, Any]] = (),
    ) -> LeaseBatch:
        """Lease jobs, waiting up to ``wait_seconds``: see :meth:`JobQueue.lease`."""
        call = calls.lease(
            queue_list(queues),
            tasks,
            max_jobs,
            lease_seconds,
            wait_seconds,
            worker,
            self.timeout,
            complete,
            fail,
        )
        return await self._run(call)

    async def heartbeat(
        self, tokens: str | Sequence[str], lease_seconds: float | None = None
    ) -> HeartbeatAnswer:
        """Extend leases in one request: see :meth:`JobQueue.heartbeat`."""
        return await self._run(calls.heartbeat(token_list(tokens), lease_seconds))

    async def complete(self, token: str, result: Any = None) -> Report:
        """Report a leased job done: see :meth:`JobQueue.complete`."""
        return await self._run(calls.complete(token, result))

    async def fail(
        self,
        token: str,
        *,
        error_type: str | None = None,
        message: str | None = None,
        traceback: str | None = None,
        retryable: bool = True,
        retry_delay_seconds: float | None = None,
    ) -> Report:
        """Report a leased job failed: see :meth:`JobQueue.fail`."""
        failure = Failure(token, error_type, message, traceback, retryable, retry_delay_seconds)
        return await self._run(calls.fail(failure))

    async def release(self, token: str) -> Report:
        """Give a leased job back: see :meth:`JobQueue.release`."""
        return await self._run(calls.release(token))

    async def complete_many(self, items: Iterable[tuple[str, Any]]) -> list[Report]:
        """Report several leased jobs done: see :meth:`JobQueue.complete_many`."""
        return await self._run(calls.complete_many(items))

    async def fail_many(self, failures: Iterable[Failure | Mapping[str, Any]]) -> list[Report]:
        """Report several leased jobs failed: see :meth:`JobQueue.fail_many`."""
        return await self._run(calls.fail_many(failures))

    async def release_many(self, tokens: Iterable[str]) -> list[Report]:
        """Give several leased jobs back: see :meth:`JobQueue.release_many`."""
        return await self._run(calls.release_many(tokens))
