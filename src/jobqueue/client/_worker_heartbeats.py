"""A remote worker's heartbeat loop: one batched heartbeat for every lease held, every
``heartbeat_seconds``, acted on (``lost``, ``cancel_requested``, ``drain``); attempts far past
their timeout are told to stop."""

from __future__ import annotations

import asyncio
import logging

from jobqueue.client._worker_protocols import LeaseClient
from jobqueue.client._worker_state import (
    CANCEL_REQUESTED,
    LOST,
    TIMEOUT,
    WorkerState,
    jittered,
    log_failure,
    log_job,
)


class Heartbeats:
    """Keeps the leases of ``state`` alive; :meth:`run` is the loop."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.config = state.config

    async def run(self, client: LeaseClient) -> None:
        """Every ``heartbeat_seconds`` (the smallest of the held leases'), one heartbeat for
        every lease held; after a failure, sooner (backoff from
        :attr:`Worker.backoff_min_seconds`)."""
        delay = self.config.backoff_min_seconds
        retry_in: float | None = None
        while True:
            await self.state.has_held.wait()
            interval = min(h.lease.heartbeat_seconds for h in self.state.held.values())
            await asyncio.sleep(interval if retry_in is None else min(interval, retry_in))
            if not self.state.held:
                continue
            if await self._heartbeat(client):
                retry_in, delay = None, self.config.backoff_min_seconds
            else:
                retry_in, delay = jittered(delay), min(delay * 2, self.config.backoff_max_seconds)
            self._stop_overdue()

    def _stop_overdue(self) -> None:
        """Tell attempts still running :attr:`Worker.stop_grace_seconds` past their timeout to stop
        (an ``async def`` task that ignored its deadline's cancellation; a plain function that
        waited that long for a thread): they are abandoned after as long again, and their jobs
        fail with a ``TimeoutError``. Checked at each heartbeat, as the in-process runner
        does."""
        now = asyncio.get_running_loop().time()
        grace = self.config.stop_grace_seconds
        for held in list(self.state.held.values()):
            overdue = now > held.started + held.context.timeout_seconds + grace
            if overdue and held.stop_reason is None and not held.reporting:
                self.state.stop_attempt(held, TIMEOUT)

    async def _heartbeat(self, client: LeaseClient) -> bool:
        """One batched heartbeat, acted on; False when it failed (leases past their end by
        this process's clock are then treated as lost)."""
        loop = asyncio.get_running_loop()
        held = {t: h for t, h in self.state.held.items() if h.stop_reason != LOST}
        if not held:  # the service refuses an empty batch
            return True
        sent = loop.time()
        try:
            answer = await client.heartbeat(list(held))
        except Exception as exc:  # the loop's boundary: nothing may end it
            log_failure("heartbeat_failed", exc, leases=len(held))
            for h in held.values():
                if loop.time() > h.expires:
                    log_job("lease_expired", h, detail="no heartbeat reached the service")
                    self.state.stop_attempt(h, LOST)
            return False
        for item in answer.leases:
            one = held.get(item.token)
            if one is None:
                continue
            if item.status == LOST:
                if not one.reporting:
                    log_job("lease_lost", one, detail="heartbeat: stopping the attempt")
                self.state.stop_attempt(one, LOST)
                continue
            if item.status == "extended":
                one.expires = sent + one.lease.lease_seconds
            if item.cancel_requested and one.stop_reason is None and not one.reporting:
                log_job("cancel_requested", one, logging.INFO)
                self.state.stop_attempt(one, CANCEL_REQUESTED)
        if answer.drain:
            self.state.pause_leasing()
        return True
