"""A remote worker's lease loop: long-polls ``POST /leases`` for as many jobs as there are free
slots, carrying the reports waiting to be sent; backs off while the service cannot be reached or
answers 503 or 429."""

from __future__ import annotations

import asyncio

from jobqueue.client._errors import ApiError
from jobqueue.client._worker_attempts import Attempts
from jobqueue.client._worker_protocols import LeaseClient
from jobqueue.client._worker_reports import Reporter
from jobqueue.client._worker_state import WorkerState, jittered, log, log_failure

MAX_CARRY_REFUSALS = 3
"""Lease calls carrying reports refused in a row before a worker stops carrying them (a service
older than the ``complete``/``fail`` fields of ``POST /leases`` refuses every one with 422)."""


def _refused(exc: Exception) -> bool:
    """A 4xx other than 429: the call was refused for what it carried."""
    return isinstance(exc, ApiError) and 400 <= exc.status_code < 500 and exc.status_code != 429


class Leasing:
    """Leases jobs for the free slots of ``state`` and starts each with ``attempts``."""

    def __init__(self, state: WorkerState, attempts: Attempts, reporter: Reporter) -> None:
        self.state = state
        self.config = state.config
        self.attempts = attempts
        self.reporter = reporter
        self.refusals = 0
        """Lease calls carrying reports refused in a row (4xx): the next call carries none."""
        self.skip_carry = False

    def _carry(self) -> bool:
        """Whether the next lease call carries the waiting reports."""
        if self.skip_carry:
            self.skip_carry = False
            return False
        return self.refusals < MAX_CARRY_REFUSALS

    def _carry_refused(self) -> None:
        """A lease call was refused for the reports it carried (a result too large, a token
        not this key's: the reports loop sorts them out one by one), or by a service that
        takes no reports on lease calls: the next call carries none, and after
        :data:`MAX_CARRY_REFUSALS` in a row none ever does."""
        self.refusals += 1
        self.skip_carry = True
        if self.refusals == MAX_CARRY_REFUSALS:
            log.warning(
                "lease_reports_not_carried refusals=%d: reports go on their own from now on",
                self.refusals,
            )

    async def run(self, client: LeaseClient, names: list[str]) -> None:
        """Lease for the free slots until cancelled; back off while the service is down."""
        loop = asyncio.get_running_loop()
        identity = {
            "name": self.config.name,
            "host": self.config.host,
            "slots": self.config.concurrency,
        }
        delay = self.config.backoff_min_seconds
        while True:
            await self.state.wait_for_slot()
            pause = self.state.drain_until - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            carried = self.reporter.take() if self._carry() else None
            try:
                batch = await client.lease(
                    self.config.queues,
                    tasks=names,
                    max_jobs=self.state.free_slots(),
                    lease_seconds=self.config.lease_seconds,
                    wait_seconds=self.config.wait_seconds,
                    worker=identity,
                    complete=carried.complete_items() if carried else (),
                    fail=carried.fail_items() if carried else (),
                )
            except BaseException as exc:
                if carried is not None:
                    self.reporter.not_carried(carried)
                if not isinstance(exc, Exception):
                    raise  # cancelled: the reports loop still sends them
                if carried is not None and _refused(exc):
                    self._carry_refused()  # the reports were at fault, not the lease: at once
                    continue
                pause = jittered(delay)
                log_failure("lease_failed", exc, retry_in=pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.config.backoff_max_seconds)
                continue
            delay = self.config.backoff_min_seconds
            if carried is not None:
                self.refusals = 0
                self.reporter.carried(carried, batch)
            # The service starts a lease as it answers: its end is counted from the answer.
            received = loop.time()
            for lease in batch.leases:
                self.attempts.start(lease, received)
            if batch.drain:
                self.state.pause_leasing()
