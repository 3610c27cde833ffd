"""The LISTEN connection: delivers this service's NOTIFY messages to subscribers in-process.

One long-lived asyncpg connection per process, outside the pool (a pooled connection is reset
and shared), listening on :data:`jobqueue.db.repository.NOTIFY_CHANNEL`. It is watched: a
termination callback and a liveness probe every ``PROBE_SECONDS`` detect a lost connection,
which is reopened with backoff and LISTENed again. After every (re)connect the ``connected``
subscribers are called, because notifications sent while we were away are gone (PostgreSQL
manual, LISTEN): the dispatcher claims at once, ``?wait_seconds`` readers re-read their job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable

import asyncpg
import structlog

from jobqueue.db.engine import CONNECT_ERRORS, CONNECTION_ERRORS
from jobqueue.db.repository import NOTIFY_CHANNEL

log = structlog.get_logger(__name__)

PROBE_SECONDS = 10.0
MAX_RECONNECT_DELAY_SECONDS = 5.0

Subscriber = Callable[[list[str]], None]
"""Called with the items of a notification, e.g. ``["default", "emails"]`` or ``["*"]``."""


class Notifications:
    """Keeps ``LISTEN`` open and fans notifications out by kind (``q``, ``f``, ``c``).

    Args:
        dsn: a libpq-style DSN for asyncpg (``postgresql://…``).
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.connected = False
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)
        self._on_connect: list[Callable[[], None]] = []

    def subscribe(self, kind: str, subscriber: Subscriber) -> None:
        """Call ``subscriber(items)`` for every notification of ``kind`` (from the event loop)."""
        self._subscribers[kind].append(subscriber)

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every (re)connect: messages may have been missed."""
        self._on_connect.append(callback)

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        kind, _, items = str(payload).partition(":")
        for subscriber in self._subscribers.get(kind, ()):
            subscriber(items.split(","))

    async def run(self) -> None:
        """Listen, reconnecting for ever, until cancelled.

        Nothing but cancellation ends it: a database that refuses connections (stopped, out of
        connection slots, ``ALLOW_CONNECTIONS false``) is retried with backoff, and so is any
        other error, which is logged with its traceback.
        """
        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=5, server_settings={"application_name": "jobqueue-listen"}
                )
            except CONNECT_ERRORS as exc:
                log.warning("listen_connect_failed", error=str(exc), retry_in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)
                continue
            delay = 0.1
            pause = 0.0
            try:
                await self._listen(conn)
            except CONNECTION_ERRORS as exc:
                log.warning("listen_connection_lost", error=str(exc))
            except Exception as exc:
                # The loop boundary: a LISTEN that stopped for good would leave every process
                # on its poll. Log it and reconnect after a pause.
                log.error("listen_failed", error=repr(exc), exc_info=exc)
                pause = MAX_RECONNECT_DELAY_SECONDS
            finally:
                self.connected = False
                with contextlib.suppress(*CONNECTION_ERRORS):
                    conn.terminate()
            await asyncio.sleep(pause)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(NOTIFY_CHANNEL, self._deliver)
        self.connected = True
        log.info("listening", channel=NOTIFY_CHANNEL)
        for callback in self._on_connect:
            callback()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PROBE_SECONDS)
                break
            await conn.execute("SELECT 1", timeout=5)
        log.warning("listen_connection_lost", error="connection closed")
