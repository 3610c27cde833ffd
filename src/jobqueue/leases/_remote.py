"""The lease use cases for workers over HTTP (docs/workers.md): opaque tokens, long-polled
leases, batched heartbeats and fenced reports, on the same statements as the in-process pool.

**Tokens.** A lease token is ``jl1.`` and the URL-safe base64 of ``job id, attempt, lease
milliseconds, worker id``. It holds no secret and nothing the service trusts beyond what the
fence checks: every write checks the job's ``worker_id`` and attempt in the database, and a
token is only accepted from the API key whose name starts its worker id, so a worker key never
reaches another key's leases. A reported failure reads the job's ``max_attempts`` from the
database (one statement per batch) to decide between a retry and ``failed``.

**Worker ids.** A remote worker's ``worker_id`` is ``<key name>/<worker name>``; in-process
workers' ids hold no ``/``. The same id names its row in the process registry (role
``remote``), written by the API process that answers it: on a lease call when what it
declares changed or every :data:`ANNOUNCE_SECONDS`, and renewed by its heartbeats.

**Long-polls.** A lease request that finds nothing waits on :class:`QueueWaiters` holding no
database connection, woken by a local enqueue, another process's NOTIFY, a rescue, or the poll
tick (:meth:`RemoteLeases.probe`: one statement per tick for every watched queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.backoff import RetryPolicy
from jobqueue.db import registry
from jobqueue.db.engine import connect, write
from jobqueue.errors import (
    DatabaseUnavailable,
    InvalidJobRequest,
    PermissionDenied,
    TooManyWaiting,
)
from jobqueue.jobs import AttemptKey, ClaimedJob, JobStatus, Outcome
from jobqueue.leases import _statements as sql
from jobqueue.leases._outcomes import (
    MAX_RESULT_BYTES,
    MAX_RESULT_DEPTH,
    ResultTooDeep,
    ResultTooLarge,
    reported_failure,
    reported_result,
)
from jobqueue.leases._remote_types import (
    ANNOUNCE_SECONDS,
    LEASE_LOST,
    MAX_ANNOUNCED,
    Caller,
    Failure,
    Granted,
    LeaseRequest,
    LeaseToken,
    Renewal,
    Report,
)
from jobqueue.leases._store import MAX_FINISH_BATCH, claim, finish, heartbeat, release
from jobqueue.leases._types import ClaimSpec
from jobqueue.metrics import Metrics
from jobqueue.notify import QueuesRunnable, QueueWaiters

log = structlog.get_logger(__name__)


class RemoteLeases:
    """The lease API's use cases in one process.

    Args:
        engine: the process's engine.
        policy: the retry backoff for failures reported without a delay.
        metrics: ended attempts and pickup waits are counted as for in-process workers.
        default_lease_seconds: the lease when a request gives none, seconds.
        poll_seconds: the poll tick of waiting requests, seconds.
        max_wait_seconds: the longest wait of one request, seconds (a request asking for more
            waits this long).
        max_waiting: waiting lease requests of this process, all keys together.
        max_waiting_per_key: waiting lease requests of one key.
        max_result_bytes, max_result_depth: the limits of a reported result.
        version: written in remote workers' registry rows.
        on_announced: called after a remote worker's row was written with new names (the
            enqueue's catalog reads the registry again on its next miss).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        policy: RetryPolicy,
        metrics: Metrics,
        *,
        default_lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        max_wait_seconds: float = 20.0,
        max_waiting: int = 1000,
        max_waiting_per_key: int = 1000,
        max_result_bytes: int = MAX_RESULT_BYTES,
        max_result_depth: int = MAX_RESULT_DEPTH,
        version: str = "remote",
        on_announced: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.metrics = metrics
        self.default_lease_seconds = default_lease_seconds
        self.poll_seconds = poll_seconds
        self.max_wait_seconds = max_wait_seconds
        self.max_waiting = max_waiting
        self.max_waiting_per_key = max_waiting_per_key
        self.max_result_bytes = max_result_bytes
        self.max_result_depth = max_result_depth
        self.version = version
        self.on_announced = on_announced
        self.clock = clock
        self.waiters = QueueWaiters()
        self.draining = False
        self._announced: OrderedDict[str, tuple[float, registry.ProcessInfo]] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()

    # -- wake-ups -----------------------------------------------------------------------------

    def on_runnable(self, event: QueuesRunnable) -> None:
        """Jobs became runnable on some queues (another process's NOTIFY)."""
        self.waiters.runnable(event.queues)

    def on_enqueued(self, due: Mapping[str, float]) -> None:
        """A local enqueue or retry committed: ``{queue: seconds until due}``."""
        self.waiters.due(due)

    def drain(self) -> None:
        """The process is stopping: waiting requests answer at once with ``drain: true``, and
        new ones lease nothing."""
        self.draining = True
        self.waiters.wake_all()

    async def probe(self) -> None:
        """Every ``poll_seconds`` while requests wait: one statement finds which watched
        queues have a due job, and wakes their waiters (delayed jobs and retries falling due,
        and anything a dropped LISTEN connection missed). Runs until cancelled (supervised: a
        database fault is logged and the next tick tried; anything else propagates)."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            watched = self.waiters.queues()
            if not watched:
                continue
            try:
                async with connect(self.engine) as conn:
                    rows = await conn.fetch(sql.DUE_QUEUES, sorted(watched))
            except DatabaseUnavailable as exc:
                log.warning("lease_probe_failed", error=str(exc))
                continue
            due = frozenset(row["name"] for row in rows)
            if due:
                self.waiters.runnable(due)

    # -- lease --------------------------------------------------------------------------------

    async def lease(self, caller: Caller, request: LeaseRequest) -> list[Granted]:
        """Lease up to ``request.max_jobs`` jobs, waiting up to ``request.wait_seconds`` when
        none is due (no database connection is held while waiting).

        Returns:
            the leases, in claim order (the queues in the order given); empty at the end of
            the wait, or at once while the process is stopping.

        Raises:
            PermissionDenied: a queue the caller's key may not lease from.
            TooManyWaiting: the key, or the process, has as many waiting requests as allowed.
            DatabaseUnavailable.
        """
        if caller.queues is not None and (refused := set(request.queues) - caller.queues):
            raise PermissionDenied(
                f"key {caller.key_name!r} may not lease from {', '.join(sorted(refused))}; it "
                f"may lease from {', '.join(sorted(caller.queues))}",
                reason="role",
                key_name=caller.key_name,
                via="bearer",
            )
        worker_id = f"{caller.key_name}/{request.worker.name}"
        await self._announce(worker_id, request)
        if self.draining:
            return []
        granted = await self._claim(worker_id, request)
        wait_seconds = min(request.wait_seconds, self.max_wait_seconds)
        if granted or wait_seconds <= 0:
            return granted
        if self.waiters.waiting(caller.key_name) >= self.max_waiting_per_key:
            raise TooManyWaiting(self.max_waiting_per_key)
        if len(self.waiters) >= self.max_waiting:
            raise TooManyWaiting(self.max_waiting)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        with self.waiters.watch(caller.key_name, frozenset(request.queues)) as woken:
            while not granted and not self.draining:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), remaining)
                if not woken.is_set() or self.draining:
                    break
                woken.clear()
                granted = await self._claim(worker_id, request)
        return granted

    async def _claim(self, worker_id: str, request: LeaseRequest) -> list[Granted]:
        """Claim from each queue in turn until ``max_jobs`` are leased. The claim is shielded:
        a request cancelled meanwhile (its client went away) gives the jobs back."""
        task = asyncio.ensure_future(self._claim_queues(worker_id, request))
        try:
            jobs = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda done: self._give_back(worker_id, done))
            raise
        lease_ms = round(request.lease_seconds * 1000)
        expires_at = datetime.now(UTC) + timedelta(seconds=request.lease_seconds)
        for job in jobs:
            self.metrics.wait.labels(job.queue).observe(job.wait_seconds)
        return [
            Granted(
                token=LeaseToken(job.id, job.attempt, lease_ms, worker_id).encode(),
                job=job,
                expires_at=expires_at,
                lease_seconds=request.lease_seconds,
                heartbeat_seconds=request.lease_seconds / 3,
            )
            for job in jobs
        ]

    async def _claim_queues(self, worker_id: str, request: LeaseRequest) -> list[ClaimedJob]:
        jobs: list[ClaimedJob] = []
        async with connect(self.engine) as conn:
            for queue in request.queues:
                limit = request.max_jobs - len(jobs)
                if limit <= 0:
                    break
                spec = ClaimSpec(queue, limit, request.tasks, request.lease_seconds)
                jobs.extend(await claim(conn, worker_id, spec))
        return jobs

    def _give_back(self, worker_id: str, done: asyncio.Future[list[ClaimedJob]]) -> None:
        if done.cancelled() or done.exception() is not None or not done.result():
            return
        keys = [(job.id, job.attempt) for job in done.result()]

        async def give_back() -> None:
            try:
                async with connect(self.engine) as conn:
                    await release(conn, worker_id, keys)
            except DatabaseUnavailable as exc:  # the rescuer gets them after the lease
                log.warning("lease_give_back_failed", worker_id=worker_id, error=str(exc))
                return
            log.info("lease_given_back", worker_id=worker_id, jobs=len(keys))

        task = asyncio.ensure_future(give_back())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _announce(self, worker_id: str, request: LeaseRequest) -> None:
        """Write the worker's registry row when what it declares changed, or every
        :data:`ANNOUNCE_SECONDS`; a database fault is left to the claim that follows."""
        worker = request.worker
        info = registry.ProcessInfo(
            worker_id=worker_id,
            host=worker.host,
            pid=0,
            version=self.version,
            queues=request.queues,
            tasks=request.tasks if request.tasks is not None else (registry.ANY_TASK,),
            slots=tuple((queue, worker.slots) for queue in request.queues),
            role="remote",
        )
        now = self.clock()
        last = self._announced.get(worker_id)
        if last is not None and last[1] == info and now - last[0] < ANNOUNCE_SECONDS:
            return
        async with write(self.engine) as conn:
            await registry.announce_process(conn, info)
        if last is None or last[1] != info:
            self.on_announced()
        self._announced[worker_id] = (now, info)
        self._announced.move_to_end(worker_id)
        while len(self._announced) > MAX_ANNOUNCED:
            self._announced.popitem(last=False)

    async def _touch(self, worker_ids: dict[str, int]) -> None:
        """Renew the registry rows of workers that heartbeat (``{worker_id: leases held}``),
        at most every :data:`ANNOUNCE_SECONDS` each."""
        now = self.clock()
        due = {
            worker_id: busy
            for worker_id, busy in worker_ids.items()
            if now - self._announced.get(worker_id, (float("-inf"), None))[0] >= ANNOUNCE_SECONDS
        }
        if not due:
            return
        async with write(self.engine) as conn:
            for worker_id, busy in due.items():
                await registry.touch_process(conn, worker_id, busy)
        for worker_id in due:
            info = self._announced.get(worker_id)
            if info is not None:
                self._announced[worker_id] = (now, info[1])

    # -- heartbeat ----------------------------------------------------------------------------

    async def heartbeat(
        self, caller: Caller, tokens: Sequence[str], lease_seconds: float | None = None
    ) -> list[Renewal]:
        """Renew leases: one statement per worker id among ``tokens`` (usually one).

        Args:
            lease_seconds: the new lease length, seconds; None: each lease's own.

        Raises:
            LeaseNotFound: a token is malformed or another key's (nothing was renewed).
            DatabaseUnavailable.
        """
        parsed = [LeaseToken.decode(text, caller.key_name) for text in tokens]
        groups: dict[tuple[str, float], list[LeaseToken]] = {}
        for token in parsed:
            length = lease_seconds if lease_seconds is not None else token.lease_ms / 1000
            groups.setdefault((token.worker_id, length), []).append(token)
        renewed: dict[tuple[str, AttemptKey], tuple[str, bool]] = {}
        async with connect(self.engine) as conn:
            for (worker_id, length), group in groups.items():
                result = await heartbeat(conn, worker_id, [t.key for t in group], length)
                for token in group:
                    if token.key in result.extended:
                        status = "extended"
                    elif token.key in result.lost:
                        status = "lost"
                    else:
                        status = "busy"
                    cancel = token.key in result.cancel_requested
                    renewed[(worker_id, token.key)] = (status, cancel)
        held: dict[str, int] = {}
        for token in parsed:
            held[token.worker_id] = held.get(token.worker_id, 0) + 1
        try:
            await self._touch(held)
        except DatabaseUnavailable as exc:  # the renewal waits for the next heartbeat
            log.warning("remote_worker_touch_failed", error=str(exc))
        now = datetime.now(UTC)
        answers = []
        for text, token in zip(tokens, parsed, strict=True):
            status, cancel = renewed[(token.worker_id, token.key)]
            length = lease_seconds if lease_seconds is not None else token.lease_ms / 1000
            expires = now + timedelta(seconds=length) if status == "extended" else None
            answers.append(Renewal(text, status, cancel, expires))
        return answers

    # -- reports ------------------------------------------------------------------------------

    async def complete(self, caller: Caller, items: Sequence[tuple[str, Any]]) -> list[Report]:
        """Write the results of leased attempts (``done``), fenced by their leases.

        Raises:
            LeaseNotFound: a token is malformed or another key's (nothing was written).
            InvalidJobRequest: a token named twice, or a result that cannot be stored (too
                large, too deep, not storable JSON); nothing was written.
            DatabaseUnavailable.
        """
        completions = self._completions(caller, items)
        check_unique_tokens([token for _, token, _ in completions])
        return await self._write_completions(completions)

    async def fail(self, caller: Caller, items: Sequence[tuple[str, Failure]]) -> list[Report]:
        """Write failed attempts, fenced by their leases: back to ``todo`` after a delay when
        retryable with attempts left, else ``failed`` (``cancelled`` when a cancel was
        requested).

        Raises:
            LeaseNotFound: a token is malformed or another key's (nothing was written).
            InvalidJobRequest: a token named twice (nothing was written).
            DatabaseUnavailable.
        """
        failures = self._failures(caller, items)
        check_unique_tokens([token for _, token, _ in failures])
        return await self._write_failures(failures)

    async def report(
        self,
        caller: Caller,
        completes: Sequence[tuple[str, Any]],
        fails: Sequence[tuple[str, Failure]],
    ) -> tuple[list[Report], list[Report]]:
        """The reports a lease call carries: every token and result of both kinds checked
        before anything is written, then the completions, then the failures.

        Returns:
            the reports of ``completes`` and of ``fails``, each in order.

        Raises:
            LeaseNotFound, InvalidJobRequest: as :meth:`complete` and :meth:`fail`, a token
                named twice across both (``complete[i]``, ``fail[j]``); nothing was written.
            DatabaseUnavailable.
        """
        completions = self._completions(caller, completes)
        failures = self._failures(caller, fails)
        places = [f"complete[{i}]" for i in range(len(completes))]
        places += [f"fail[{i}]" for i in range(len(fails))]
        tokens = [token for _, token, _ in completions] + [token for _, token, _ in failures]
        check_unique_tokens(tokens, places)
        completed = await self._write_completions(completions) if completions else []
        failed = await self._write_failures(failures) if failures else []
        return completed, failed

    def _completions(
        self, caller: Caller, items: Sequence[tuple[str, Any]]
    ) -> list[tuple[str, LeaseToken, Outcome]]:
        """Each completion's token and ``done`` outcome; raises before anything is written."""
        outcomes: list[tuple[str, LeaseToken, Outcome]] = []
        for text, value in items:
            token = LeaseToken.decode(text, caller.key_name)
            try:
                result_json = reported_result(value, self.max_result_bytes, self.max_result_depth)
            except (ResultTooLarge, ResultTooDeep) as exc:
                raise InvalidJobRequest(f"job {token.job_id}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise InvalidJobRequest(f"job {token.job_id}: the result: {exc}") from None
            outcome = Outcome(token.job_id, token.attempt, JobStatus.DONE, result_json=result_json)
            outcomes.append((text, token, outcome))
        return outcomes

    @staticmethod
    def _failures(
        caller: Caller, items: Sequence[tuple[str, Failure]]
    ) -> list[tuple[str, LeaseToken, Failure]]:
        """Each failure with its token; raises before anything is written."""
        return [(text, LeaseToken.decode(text, caller.key_name), f) for text, f in items]

    async def _write_completions(
        self, outcomes: list[tuple[str, LeaseToken, Outcome]]
    ) -> list[Report]:
        return await self._finish(outcomes, repeat_outcomes={JobStatus.DONE.value})

    async def _write_failures(self, parsed: list[tuple[str, LeaseToken, Failure]]) -> list[Report]:
        async with connect(self.engine) as conn:
            rows = await conn.fetch(sql.MAX_ATTEMPTS, [token.job_id for _, token, _ in parsed])
        # A job that is gone gets attempt + 1: its write is refused by the fence anyway.
        limits = {row["id"]: row["max_attempts"] for row in rows}
        outcomes = []
        for text, token, failure in parsed:
            outcome = reported_failure(
                token.key,
                limits.get(token.job_id, token.attempt + 1),
                self.policy,
                error_type=failure.error_type,
                message=failure.message,
                trace=failure.traceback,
                retryable=failure.retryable,
                retry_delay_seconds=failure.retry_delay_seconds,
            )
            outcomes.append((text, token, outcome))
        return await self._finish(outcomes, repeat_outcomes={"failed", "retried", "cancelled"})

    async def _finish(
        self, outcomes: list[tuple[str, LeaseToken, Outcome]], repeat_outcomes: set[str]
    ) -> list[Report]:
        groups: dict[str, list[Outcome]] = {}
        for _, token, outcome in outcomes:
            groups.setdefault(token.worker_id, []).append(outcome)
        written: dict[tuple[str, AttemptKey], JobStatus] = {}
        async with connect(self.engine) as conn:
            for worker_id, group in groups.items():
                for start in range(0, len(group), MAX_FINISH_BATCH):
                    result = await finish(conn, worker_id, group[start : start + MAX_FINISH_BATCH])
                    for key, status in result.written.items():
                        written[(worker_id, key)] = status
                    self.metrics.count_finished(
                        (*result.labels[key], _outcome_label(status))
                        for key, status in result.written.items()
                        if key in result.labels
                    )
            refused = [t for _, t, _ in outcomes if (t.worker_id, t.key) not in written]
            repeats = await self._repeats(conn, refused, repeat_outcomes) if refused else {}
        reports = []
        for text, token, _ in outcomes:
            status_written = written.get((token.worker_id, token.key))
            if status_written is not None:
                reports.append(Report(text, token.job_id, token.attempt, status_written.value))
                continue
            repeated, current = repeats[(token.worker_id, token.key)]
            if repeated:
                reports.append(
                    Report(text, token.job_id, token.attempt, current or "", repeated=True)
                )
            else:
                log.info(
                    "lease_lost",
                    job_id=token.job_id,
                    attempt=token.attempt,
                    worker_id=token.worker_id,
                    status=current,
                )
                reports.append(
                    Report(text, token.job_id, token.attempt, LEASE_LOST, current=current)
                )
        return reports

    async def _repeats(
        self, conn: Any, refused: list[LeaseToken], repeat_outcomes: set[str]
    ) -> dict[tuple[str, AttemptKey], tuple[bool, str | None]]:
        """For refused reports: ``{(worker, attempt): (already written by it, status now)}``."""
        rows = await conn.fetch(
            sql.REPEATS,
            [t.job_id for t in refused],
            [t.attempt for t in refused],
            [t.worker_id for t in refused],
        )
        found: dict[tuple[str, AttemptKey], tuple[bool, str | None]] = {}
        for token, row in zip(refused, rows, strict=True):
            status = row["status"]
            if JobStatus.DONE.value in repeat_outcomes:
                repeated = (
                    status == JobStatus.DONE.value
                    and row["attempts"] == token.attempt
                    and row["worker_id"] == token.worker_id
                )
            else:
                repeated = row["outcome"] in repeat_outcomes
            # The status now is told only to a worker that held the job (its history has the
            # attempt) or whose key holds it: a forged token must not read other keys' jobs.
            ours = (row["worker_id"] or "").startswith(f"{token.key_name}/")
            found[(token.worker_id, token.key)] = (
                repeated,
                status if ours or row["outcome"] is not None else None,
            )
        return found

    async def release(self, caller: Caller, tokens: Sequence[str]) -> list[Report]:
        """Give leased jobs back to ``todo`` without counting the attempt (a stopping worker).

        Raises:
            LeaseNotFound: a token is malformed or another key's (nothing was released).
            DatabaseUnavailable.
        """
        parsed = [(text, LeaseToken.decode(text, caller.key_name)) for text in tokens]
        check_unique_tokens([token for _, token in parsed])
        groups: dict[str, list[LeaseToken]] = {}
        for _, token in parsed:
            groups.setdefault(token.worker_id, []).append(token)
        released: set[tuple[str, AttemptKey]] = set()
        async with connect(self.engine) as conn:
            for worker_id, group in groups.items():
                keys = await release(conn, worker_id, [t.key for t in group])
                released.update((worker_id, key) for key in keys)
        if released:
            self.waiters.runnable(None)
        return [
            Report(text, token.job_id, token.attempt, JobStatus.TODO.value)
            if (token.worker_id, token.key) in released
            else Report(text, token.job_id, token.attempt, LEASE_LOST)
            for text, token in parsed
        ]


def _outcome_label(status: JobStatus) -> str:
    """The ``outcome`` label of ``jobqueue_jobs_finished_total`` for a status written."""
    return "retried" if status is JobStatus.TODO else status.value


def check_unique_tokens(tokens: Sequence[LeaseToken], places: Sequence[str] | None = None) -> None:
    """Refuse a batch that names a lease twice: two reports of one attempt would be written
    once and the other answered as if written too. Compared by attempt, not by text: a worker
    may edit the lease length in its own token, which makes another text for the same lease.

    Args:
        tokens: the batch's tokens, decoded, in order.
        places: what to call each item in the message (default ``leases[i]``, the batch
            routes' field).

    Raises:
        InvalidJobRequest: a token is listed twice (the message names both items).
    """
    seen: dict[AttemptKey, int] = {}
    for index, token in enumerate(tokens):
        first = seen.setdefault(token.key, index)
        if first != index:
            a, b = (
                (places[first], places[index])
                if places
                else (f"leases[{first}]", f"leases[{index}]")
            )
            raise InvalidJobRequest(f"{a} and {b} name the same lease: report each lease once")
