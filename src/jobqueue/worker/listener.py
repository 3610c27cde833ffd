"""The LISTEN connection: wakes the dispatcher when another process enqueues.

It lives outside the pool (a pooled connection would be reset and reused), and is watched: a
termination callback and a liveness probe every ``PROBE_SECONDS`` detect a lost connection, which
is reconnected with backoff and LISTENed again. After every (re)connect the dispatcher is woken
once, because notifications sent while we were away are gone (PostgreSQL manual, LISTEN).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog

from jobqueue.db.engine import CONNECTION_ERRORS
from jobqueue.db.repository import NOTIFY_CHANNEL

log = structlog.get_logger(__name__)

PROBE_SECONDS = 10.0
MAX_RECONNECT_DELAY_SECONDS = 5.0


class Listener:
    """Keeps ``LISTEN jobqueue_jobs`` open and calls ``wake()`` for notifications about ``queues``.

    Args:
        dsn: a libpq-style DSN for asyncpg (``postgresql://…``).
        queues: the queues this process serves; notifications about others are ignored.
        wake: called (from the event loop) when work may be waiting.
    """

    def __init__(self, *, dsn: str, queues: list[str], wake: Callable[[], None]) -> None:
        self.dsn = dsn
        self.queues = set(queues)
        self.wake = wake
        self.connected = False

    def _on_notify(
        self,
        _conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        _pid: int,
        _channel: str,
        payload: object,
    ) -> None:
        if payload == "*" or not self.queues.isdisjoint(str(payload).split(",")):
            self.wake()

    async def run(self) -> None:
        """Listen, reconnecting for ever, until cancelled."""
        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5)
            except CONNECTION_ERRORS as exc:
                log.warning("listen_connect_failed", error=str(exc), retry_in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)
                continue
            delay = 0.1
            try:
                await self._listen(conn)
            except CONNECTION_ERRORS as exc:
                log.warning("listen_connection_lost", error=str(exc))
            finally:
                self.connected = False
                with contextlib.suppress(*CONNECTION_ERRORS):
                    conn.terminate()

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        self.connected = True
        log.info("listening", channel=NOTIFY_CHANNEL)
        self.wake()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PROBE_SECONDS)
                break
            await conn.execute("SELECT 1", timeout=5)
        log.warning("listen_connection_lost", error="connection closed")
