"""A remote worker's graceful shutdown: leasing stops; running jobs get ``grace_seconds`` to
finish and report; the rest are cancelled and released in one ``POST /leases/release``."""

from __future__ import annotations

import asyncio
from typing import Any

from jobqueue.client._worker_protocols import SERVICE_DOWN, LeaseClient
from jobqueue.client._worker_state import (
    SHUTDOWN,
    WorkerState,
    describe,
    jittered,
    log,
    log_failure,
)


class Shutdown:
    """Shuts down the worker whose leases ``state`` holds."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.config = state.config

    async def run(
        self,
        client: LeaseClient,
        loops: tuple[asyncio.Task[None], asyncio.Task[None], asyncio.Task[None]],
        grace_seconds: float,
    ) -> None:
        """Stop leasing; give running jobs ``grace_seconds`` to finish and report (heartbeats
        and reports go on); stop the rest and release them in one call."""
        leasing, beating, reporting = loops
        log.info("worker_stopping held=%d grace_seconds=%g", len(self.state.held), grace_seconds)
        leasing.cancel()
        await asyncio.wait({leasing})
        await self._grace(grace_seconds)
        for held in list(self.state.held.values()):
            self.state.stop_attempt(held, SHUTDOWN)
        # Attempts end at once when cancelled; one that ignores it, and a report still being
        # retried, get stop_grace_seconds, then they are cancelled (a job whose attempt did not
        # end is released too; one whose report did not get through is rescued).
        handlers = self.state.handlers()
        if handlers:
            await asyncio.wait(handlers, timeout=self.config.stop_grace_seconds)
        handlers = self.state.handlers()
        for handler in handlers:
            handler.cancel()
        if handlers:
            await asyncio.wait(handlers)
        beating.cancel()
        reporting.cancel()
        await self._release(client)

    async def _grace(self, grace_seconds: float) -> None:
        """Wait until every held job has ended and reported, ``grace_seconds`` at most, or
        until a second :meth:`Worker.stop`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        pending: set[asyncio.Future[Any]] = set(self.state.handlers())
        if not pending:
            return
        hurry = asyncio.ensure_future(self.state.hurry.wait())
        try:
            while pending and not hurry.done() and loop.time() < deadline:
                _, pending = await asyncio.wait(
                    {*pending, hurry},
                    timeout=deadline - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                pending.discard(hurry)
        finally:
            hurry.cancel()

    async def _release(self, client: LeaseClient) -> None:
        """Release the jobs stopped by the shutdown in one call (their attempt not counted),
        retried with backoff while the service is down, for up to :attr:`Worker.stop_grace_seconds`:
        after that, their leases expire and they are rescued."""
        tokens, self.state.to_release = self.state.to_release, []
        if not tokens:
            return
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.config.stop_grace_seconds
        delay = self.config.backoff_min_seconds
        while True:
            try:
                reports = await client.release_many(tokens)
            except SERVICE_DOWN as exc:
                pause = jittered(delay)
                if loop.time() + pause >= give_up_at:
                    log.warning(
                        "release_given_up leases=%d error=%s detail=%s",
                        len(tokens),
                        describe(exc),
                        "the jobs are rescued when their leases expire",
                    )
                    return
                log_failure("release_failed", exc, retry_in=pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.config.backoff_max_seconds)
            except Exception as exc:  # the end of the shutdown: log, never raise
                log_failure("release_failed", exc)
                return
            else:
                released = sum(1 for r in reports if r.status == "todo")
                log.info("jobs_released leases=%d released=%d", len(tokens), released)
                return
