"""The claim coordinator: the one owner of a process's slots, leases and outcome writes.

One loop, single-flight (saq's one fetcher, River's producer): each round writes the outcomes
the runners handed in (group commit) and claims jobs for free slots, in one statement
(``leases.finish`` with a claim), or claims alone, or writes alone. Nothing else in the process
claims, so no slot is ever reserved twice and no wake-up is lost:

- a wake-up (local enqueue, NOTIFY, rescue, reconnect) marks queues *wanted* and sets the
  event; a round takes a queue out of *wanted* before its claim, so a wake-up that arrives
  during the claim puts it back and the next round claims again;
- a claim that filled its limit leaves the queue wanted (more may be due);
- a timer to the earliest ``run_at`` this process knows of (its own retries, its own delayed
  enqueues) marks the queue wanted when it comes; the poll marks every queue wanted every
  ``poll_interval_seconds`` (the safety net for what a dropped LISTEN connection missed).

Everything it holds is keyed by the attempt ``(job_id, attempt)``: a process may hold a stale
attempt of a job (its lease lost, the job rescued) and the new one at once, and the stale one's
end touches nothing of the new one: its outcome is refused by the fence, logged ``lease_lost``
with both attempts, and counted in ``jobqueue_leases_lost_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from jobqueue.errors import DatabaseUnavailable, OutcomeRejected
from jobqueue.jobs import AttemptKey, ClaimedJob, JobStatus, Outcome
from jobqueue.leases import MAX_FINISH_BATCH, ClaimSpec, FinishResult, LeaseStore, Refused
from jobqueue.metrics import Metrics

log = structlog.get_logger(__name__)

MAX_CLAIM_BATCH = 100
"""The most jobs one claim takes, whatever the free slots."""

MAX_TIMERS = 10_000
"""The most due-time timers kept; beyond, a later job is found by the poll (bounds memory when
thousands of jobs a second are retried with long backoffs)."""

RETRY_DELAY_SECONDS = 0.5
"""Pause after a round the database refused (it is down), in seconds."""

_OUTCOME_LABEL = {
    JobStatus.DONE: "done",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.TODO: "retried",
}


@dataclass(frozen=True)
class CoordinatorConfig:
    """How the coordinator claims; durations in seconds.

    Attributes:
        queues: slots per served queue, e.g. ``{"default": 10, "emails": 2}``.
        tasks: the task names this process can run: it claims no other job.
        lease_seconds: the lease each claim takes.
        poll_interval_seconds: the longest time between two claims of a queue with free slots.
    """

    queues: Mapping[str, int]
    tasks: tuple[str, ...]
    lease_seconds: float = 30.0
    poll_interval_seconds: float = 1.0


class Coordinator:
    """Owns the slots, the held attempts and the outcome buffer; runs the claim/write loop.

    Args:
        store: the lease use cases (PostgreSQL, or an in-memory fake in unit tests).
        config: see :class:`CoordinatorConfig`.
        metrics: where wait times, finished attempts and lost leases are counted.
        clock: monotonic seconds (tests pass a fake).
        on_finished: called with the ids of jobs a write made final (``done``, ``failed``,
            ``cancelled``): wakes this process's long-poll readers at once, without waiting
            for the NOTIFY (which poll-only mode does not have).
    """

    def __init__(
        self,
        store: LeaseStore,
        config: CoordinatorConfig,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_finished: Callable[[set[int]], None] | None = None,
    ) -> None:
        self.store = store
        self.on_finished = on_finished
        self.config = config
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.limits = dict(config.queues)
        self.busy = dict.fromkeys(self.limits, 0)
        self.held: dict[AttemptKey, ClaimedJob] = {}
        self.pending: list[Outcome] = []
        self.ready: asyncio.Queue[ClaimedJob] = asyncio.Queue(maxsize=sum(self.limits.values()))
        self.idle = asyncio.Event()
        self.idle.set()
        self.stopping = False
        self._wanted: set[str] = set(self.limits)
        self._timers: list[tuple[float, str]] = []
        self._event = asyncio.Event()
        self._event.set()
        self._next_poll = clock() + config.poll_interval_seconds
        self._lost: set[AttemptKey] = set()
        self.rounds = 0
        """Rounds completed (a signal for tests and the dashboard: the loop makes progress)."""

    # --- what other parts tell it (no I/O, safe from any callback) -------------------------

    def wake(self, queues: Iterable[str] | None = None) -> None:
        """Claim for ``queues`` (None: every served queue) at the next round."""
        if queues is None:
            self._wanted.update(self.limits)
        else:
            self._wanted.update(q for q in queues if q in self.limits)
        self._event.set()

    def due(self, due_in: Mapping[str, float]) -> None:
        """New work: ``{queue: seconds until its earliest job is due}`` (0: now)."""
        now = self.clock()
        for queue, seconds in due_in.items():
            if queue not in self.limits:
                continue
            if seconds <= 0:
                self._wanted.add(queue)
            elif len(self._timers) < MAX_TIMERS:
                heapq.heappush(self._timers, (now + seconds, queue))
        self._event.set()

    def deliver(self, job: ClaimedJob, outcome: Outcome | None) -> None:
        """A runner is done with ``job``: free its slot, and buffer its outcome for the next
        write. ``None`` (the attempt was stopped by shutdown) keeps the lease held, for the
        pool to release. The outcome of an attempt whose lease is known lost is dropped."""
        self.busy[job.queue] -= 1
        if sum(self.busy.values()) == 0:
            self.idle.set()
        if outcome is None:
            return
        if job.key in self._lost or job.key not in self.held:
            self._lost.discard(job.key)
            return
        self.pending.append(outcome)
        self._event.set()

    def lose(self, keys: Iterable[AttemptKey]) -> list[ClaimedJob]:
        """The heartbeat found these attempts' leases lost: forget them.

        An attempt whose outcome is already buffered keeps it (the fenced write decides). The
        others are returned for the pool to stop at once; their outcome will be dropped.

        Returns:
            the jobs of the lost attempts that are still queued or running.
        """
        buffered = {outcome.key for outcome in self.pending}
        stopped: list[ClaimedJob] = []
        for key in keys:
            job = self.held.get(key)
            if job is None or key in buffered:
                continue
            del self.held[key]
            self._lost.add(key)
            stopped.append(job)
            self._lease_lost(key, job, None, dropped="attempt")
        return stopped

    def held_keys(self) -> list[AttemptKey]:
        """The attempts whose lease this process holds (running, queued, or with a buffered
        outcome): what the heartbeat extends."""
        return list(self.held)

    @property
    def wanted(self) -> frozenset[str]:
        """The queues the next round may claim for."""
        return frozenset(self._wanted)

    def free_slots(self, queue: str) -> int:
        """Slots of ``queue`` with no job, 0 to ``limits[queue]``."""
        return max(self.limits[queue] - self.busy[queue], 0)

    @property
    def total_busy(self) -> int:
        """Slots with a job (queued or running), all queues together."""
        return sum(self.busy.values())

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Write and claim until cancelled; a database fault is logged and the round retried
        after :data:`RETRY_DELAY_SECONDS`. Anything else propagates (the supervisor restarts
        the loop; buffered outcomes and held leases survive the restart)."""
        self._wanted.update(self.limits)  # a (re)start may have missed wake-ups
        while True:
            await self._wait_for_work()
            try:
                await self.round()
            except DatabaseUnavailable as exc:
                log.warning("claim_round_failed", error=str(exc), pending=len(self.pending))
                await asyncio.sleep(RETRY_DELAY_SECONDS)

    async def _wait_for_work(self) -> None:
        while True:
            self._fire_timers()
            if self.pending or self._claimable():
                return
            self._event.clear()
            deadline = self._next_poll
            if self._timers:
                deadline = min(deadline, self._timers[0][0])
            timeout = deadline - self.clock()
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), timeout)

    def _fire_timers(self) -> None:
        now = self.clock()
        if now >= self._next_poll:
            self._wanted.update(self.limits)
            self._next_poll = now + self.config.poll_interval_seconds
        while self._timers and self._timers[0][0] <= now:
            self._wanted.add(heapq.heappop(self._timers)[1])

    def _claimable(self) -> bool:
        return not self.stopping and any(self.free_slots(q) for q in self._wanted)

    def _plan(self) -> ClaimSpec | None:
        """The claim of this round: the wanted queue with the most free slots, taken out of
        *wanted* (a wake-up during the claim puts it back)."""
        if self.stopping:
            return None
        candidates = [q for q in self._wanted if self.free_slots(q)]
        if not candidates:
            return None
        queue = max(candidates, key=self.free_slots)
        self._wanted.discard(queue)
        return ClaimSpec(
            queue=queue,
            limit=min(self.free_slots(queue), MAX_CLAIM_BATCH),
            tasks=self.config.tasks,
            lease_seconds=self.config.lease_seconds,
        )

    async def round(self) -> None:
        """One round: write up to ``MAX_FINISH_BATCH`` buffered outcomes and/or claim.

        Raises:
            DatabaseUnavailable: nothing was written or claimed; the outcomes stay buffered
                and the claimed-for queue stays wanted.
        """
        batch = self.pending[:MAX_FINISH_BATCH]
        spec = self._plan()
        if not batch and spec is None:
            return
        try:
            if batch:
                result = await self.store.finish(batch, spec)
            else:
                assert spec is not None
                result = FinishResult(claimed=await self.store.claim(spec))
        except OutcomeRejected as exc:
            if spec is not None:
                self._wanted.add(spec.queue)
            log.error("outcome_batch_rejected", error=str(exc), outcomes=len(batch))
            await self._write_one_by_one(batch)
            return
        except BaseException:
            if spec is not None:
                self._wanted.add(spec.queue)
            raise
        # Runners only append and only this loop removes: the batch is still the head.
        del self.pending[: len(batch)]
        self._settle(batch, result)
        if spec is not None:
            self._accept(spec, result.claimed)
        self.rounds += 1

    async def _write_one_by_one(self, batch: Sequence[Outcome]) -> None:
        """After the database refused a batch as data: write each outcome alone, so that one
        bad outcome holds back no other. An outcome refused alone is replaced by a failure that
        says so (``OutcomeNotStored``); if even that is refused, it is dropped and its lease
        left to expire (the rescuer then puts the job back).

        Raises:
            DatabaseUnavailable: the outcomes not yet written stay buffered.
        """
        for outcome in batch:
            result: FinishResult | None
            try:
                result = await self.store.finish([outcome], None)
            except OutcomeRejected as exc:
                result = await self._store_instead(outcome, str(exc))
            self.pending.remove(outcome)
            if result is not None:
                self._settle([outcome], result)

    async def _store_instead(self, outcome: Outcome, reason: str) -> FinishResult | None:
        """Write a failure in place of a refused outcome; None when even that is refused (the
        outcome is dropped and the job's lease left to expire)."""
        log.error(
            "outcome_not_stored",
            job_id=outcome.job_id,
            attempt=outcome.attempt,
            status=str(outcome.status),
            error=reason,
        )
        substitute = Outcome(
            outcome.job_id,
            outcome.attempt,
            JobStatus.FAILED,
            error_type="OutcomeNotStored",
            error_message="the database refused this attempt's outcome as data (a value out of "
            "its range, or text it cannot hold); the attempt is failed instead",
        )
        try:
            return await self.store.finish([substitute], None)
        except OutcomeRejected:
            log.error("outcome_dropped", job_id=outcome.job_id, attempt=outcome.attempt)
            self.held.pop(outcome.key, None)  # its lease expires; the rescuer takes over
            return None

    def _settle(self, batch: Sequence[Outcome], result: FinishResult) -> None:
        refused = {item.key: item for item in result.refused}
        finished: list[tuple[str, str, str]] = []
        final: set[int] = set()
        retries: dict[str, float] = {}
        for outcome in batch:
            job = self.held.pop(outcome.key, None)
            status = result.written.get(outcome.key)
            if status is None:
                self._lease_lost(outcome.key, job, refused.get(outcome.key), dropped="outcome")
                continue
            if job is None:
                continue
            finished.append((job.queue, job.task, _OUTCOME_LABEL[status]))
            if status is not JobStatus.TODO:
                final.add(job.id)
            else:
                # The statement set run_at = its now() + delay, and it ran before this moment:
                # a timer from now fires no earlier than the retry is due.
                delay = outcome.retry_delay_seconds
                retries[job.queue] = min(retries.get(job.queue, delay), delay)
        self.metrics.count_finished(finished)
        if final and self.on_finished is not None:
            self.on_finished(final)
        if retries:
            self.due(retries)

    def _lease_lost(
        self, key: AttemptKey, job: ClaimedJob | None, refused: Refused | None, dropped: str
    ) -> None:
        """Log and count a lost lease: ``dropped`` says what of the attempt was thrown away
        (``outcome``: the fence refused it; ``attempt``: it was stopped before its end)."""
        queue, task = (job.queue, job.task) if job is not None else ("unknown", "unknown")
        self.metrics.leases_lost.labels(queue, task).inc()
        current = refused.current_status if refused is not None else None
        log.warning(
            "lease_lost",
            job_id=key[0],
            attempt=key[1],
            queue=queue,
            task=task,
            current_attempt=refused.current_attempt if refused is not None else None,
            current_status=None if current is None else str(current),
            dropped=dropped,
        )

    def _accept(self, spec: ClaimSpec, claimed: list[ClaimedJob]) -> None:
        for job in claimed:
            self.held[job.key] = job
            self.busy[job.queue] += 1
            self.idle.clear()
            self.ready.put_nowait(job)
            self.metrics.wait.labels(job.queue).observe(job.wait_seconds)
        if len(claimed) == spec.limit:
            self._wanted.add(spec.queue)  # it gave all we asked for: more may be due
