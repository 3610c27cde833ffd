"""A remote worker's lease loop: long-polls ``POST /leases`` for as many jobs as there are free
slots, carrying the reports waiting to be sent; backs off while the service cannot be reached or
answers 503 or 429."""

from __future__ import annotations

import asyncio

from jobqueue.client._errors import ApiError
from jobqueue.client._worker_attempts import Attempts
from jobqueue.client._worker_protocols import LeaseClient
from jobqueue.client._worker_reports import Carried, Reporter
from jobqueue.client._worker_state import WorkerState, jittered, log, log_failure


def _refused(exc: Exception) -> bool:
    """A 4xx other than 429: the call was refused for what it carried."""
    return isinstance(exc, ApiError) and 400 <= exc.status_code < 500 and exc.status_code != 429


def _fields_unknown(exc: Exception) -> bool:
    """A 422 that names ``complete`` or ``fail`` as fields the service does not take: it is
    older than reports on lease calls."""
    if not isinstance(exc, ApiError) or exc.status_code != 422 or not isinstance(exc.detail, list):
        return False
    return any(
        isinstance(item, dict)
        and item.get("type") == "extra_forbidden"
        and list(item.get("loc") or [])[-1:] in (["complete"], ["fail"])
        for item in exc.detail
    )


class Leasing:
    """Leases jobs for the free slots of ``state`` and starts each with ``attempts``."""

    def __init__(self, state: WorkerState, attempts: Attempts, reporter: Reporter) -> None:
        self.state = state
        self.config = state.config
        self.attempts = attempts
        self.reporter = reporter
        self.carry = True
        """False once the service said it takes no reports on lease calls (an older one)."""

    def _carry_refused(self, carried: Carried, exc: Exception) -> None:
        """A lease call was refused for the reports it carried: they go to the reports loop,
        never carried again (it sorts them out one by one: a result too large fails its
        attempt); a service that takes no reports on lease calls at all is not sent any
        more."""
        self.reporter.not_carried(carried, carry_again=False)
        if _fields_unknown(exc):
            self.carry = False
            log.warning("lease_reports_not_carried: the service takes no reports on lease calls")

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
            carried = self.reporter.take() if self.carry else None
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
                if carried is not None and isinstance(exc, Exception) and _refused(exc):
                    self._carry_refused(carried, exc)  # the reports were at fault: at once
                    continue
                if carried is not None:
                    self.reporter.not_carried(carried)
                if not isinstance(exc, Exception):
                    raise  # cancelled: the reports loop still sends them
                pause = jittered(delay)
                log_failure("lease_failed", exc, retry_in=pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.config.backoff_max_seconds)
                continue
            delay = self.config.backoff_min_seconds
            if carried is not None:
                self.reporter.carried(carried, batch)
            # The service starts a lease as it answers: its end is counted from the answer.
            received = loop.time()
            for lease in batch.leases:
                self.attempts.start(lease, received)
            if batch.drain:
                self.state.pause_leasing()
