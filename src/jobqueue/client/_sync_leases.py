"""The lease protocol's methods of :class:`JobQueue` (docs/workers.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from jobqueue.client import _calls as calls
from jobqueue.client._base import queue_list, token_list
from jobqueue.client._leases import Failure, HeartbeatAnswer, LeaseBatch, Report
from jobqueue.client._retry import Call

T = TypeVar("T")


class SyncLeaseMethods:
    """Lease, heartbeat and report jobs: what a remote worker calls. Mixed into
    :class:`JobQueue`, which sends the calls."""

    timeout: float

    def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    def lease(
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
        """Lease jobs to run (``POST /leases``), waiting up to ``wait_seconds`` for one.

        Heartbeat each lease every ``heartbeat_seconds`` while its job runs, then report it
        with :meth:`complete`, :meth:`fail` or :meth:`release`. Not retried once sent (a lost
        answer would hold jobs nobody runs until their leases expire), except after a 429,
        which leased nothing. The socket timeout is ``wait_seconds`` + 10 s at least.

        Args:
            queues: lease from these queues (1 to 32), in this order.
            tasks: only jobs of these tasks (None: any task).
            max_jobs: at most this many, 1 to 1000.
            lease_seconds: each lease's length, 1 to 3600 s (None: the service's default).
            wait_seconds: when nothing is due, wait up to this long (0 to 20 s) for a job.
            worker: this worker process's name (1 to 100 of ``A-Za-z0-9_.:@-``, unique per
                process), or ``{"name": ..., "host": ..., "slots": ...}``; it shows in
                :meth:`workers` and announces the worker's ``tasks``. None: ``<host>:<pid>``.
            complete: ``(token, result)`` reports to carry, as :meth:`complete_many` takes:
                written before the lease; a call that carries reports does not wait.
            fail: failures to carry, as :meth:`fail_many` takes.

        Returns:
            A :class:`LeaseBatch`: ``leases`` (empty when nothing came within the wait),
            ``drain`` (True: the service is stopping; finish what you hold, back off, lease
            again), and ``completed``/``failed``, the carried reports' answers.

        Raises:
            Forbidden: the key's role may not lease, or not from these queues.
            ValidationFailed: a bad field.
            TooManyRequests: too many long-polls wait for this key (after the retries).
        """
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
        return self._run(call)

    def heartbeat(
        self, tokens: str | Sequence[str], lease_seconds: float | None = None
    ) -> HeartbeatAnswer:
        """Extend leases, all in one request (``POST /leases/heartbeat``). Safe to repeat.

        Args:
            tokens: the leases' tokens (one ``str`` is one token).
            lease_seconds: extend each by this long, seconds (None: the lease's own length).

        Returns:
            A :class:`HeartbeatAnswer`: per token ``extended``, ``lost`` (stop that job) or
            ``busy`` (send it again next time), with ``cancel_requested``; and ``drain``.

        Raises:
            NotFound: a token is malformed or not this key's.
        """
        return self._run(calls.heartbeat(token_list(tokens), lease_seconds))

    def complete(self, token: str, result: Any = None) -> Report:
        """Report a leased job done with its result (``POST /leases/{token}/complete``). Safe
        to repeat: a repeat answers ``repeated=True``.

        Args:
            token: the lease's token.
            result: any JSON value (at most ``JOBQUEUE_MAX_RESULT_BYTES``).

        Returns:
            A :class:`Report` (``status`` ``done``).

        Raises:
            LeaseLost: the lease no longer holds; nothing was written.
            NotFound: the token is malformed or not this key's.
            ValidationFailed: the result is too large.
        """
        return self._run(calls.complete(token, result))

    def fail(
        self,
        token: str,
        *,
        error_type: str | None = None,
        message: str | None = None,
        traceback: str | None = None,
        retryable: bool = True,
        retry_delay_seconds: float | None = None,
    ) -> Report:
        """Report a leased job failed (``POST /leases/{token}/fail``). Safe to repeat.

        A retryable failure with attempts left goes back to ``todo`` after
        ``retry_delay_seconds`` (or the service's backoff); otherwise the job ends ``failed``;
        a job whose cancel was requested ends ``cancelled``.

        Args:
            token: the lease's token.
            error_type: the exception's type, e.g. ``ValueError``.
            message: what went wrong (the service keeps 4,000 characters).
            traceback: the traceback text (the service keeps 4,000 characters).
            retryable: False to end the job ``failed`` at once.
            retry_delay_seconds: when to retry, seconds from now.

        Returns:
            A :class:`Report` (``status`` ``todo``, ``failed`` or ``cancelled``).

        Raises:
            LeaseLost: the lease no longer holds; nothing was written.
            NotFound: the token is malformed or not this key's.
        """
        failure = Failure(token, error_type, message, traceback, retryable, retry_delay_seconds)
        return self._run(calls.fail(failure))

    def release(self, token: str) -> Report:
        """Give a leased job back without using up its attempt (``POST
        /leases/{token}/release``): the worker is stopping. Safe to repeat.

        Returns:
            A :class:`Report` (``status`` ``todo``).

        Raises:
            LeaseLost: the lease is already gone (harmless: the job is no longer yours).
            NotFound: the token is malformed or not this key's.
        """
        return self._run(calls.release(token))

    def complete_many(self, items: Iterable[tuple[str, Any]]) -> list[Report]:
        """Report several leased jobs done in one request (``POST /leases/complete``). Safe
        to repeat.

        Args:
            items: ``(token, result)`` pairs.

        Returns:
            One :class:`Report` per pair, with its ``token``; a lease that no longer held has
            ``status == "lease_lost"`` (``.lost``), and nothing was written for it.
        """
        return self._run(calls.complete_many(items))

    def fail_many(self, failures: Iterable[Failure | Mapping[str, Any]]) -> list[Report]:
        """Report several leased jobs failed in one request (``POST /leases/fail``). Safe to
        repeat.

        Args:
            failures: one :class:`Failure` per job (the token and :meth:`fail`'s fields), or
                a dict of the same fields (``{"token": ..., "message": ...}``).

        Returns:
            One :class:`Report` per failure, as :meth:`complete_many`.
        """
        return self._run(calls.fail_many(failures))

    def release_many(self, tokens: Iterable[str]) -> list[Report]:
        """Give several leased jobs back in one request (``POST /leases/release``). Safe to
        repeat.

        Returns:
            One :class:`Report` per token, as :meth:`complete_many`.
        """
        return self._run(calls.release_many(tokens))
