"""The LISTEN connection: delivers the channel's messages to subscribers in this process.

One long-lived asyncpg connection per process, outside the pool (a pooled connection is reset
and shared), listening on :data:`jobqueue.notify.protocol.CHANNEL`. It is watched: a termination
callback and a liveness probe every ``PROBE_SECONDS`` detect a lost connection, which is reopened
with backoff and LISTENed again. After every (re)connect the ``on_connect`` callbacks run,
because notifications sent while we were away are gone (PostgreSQL manual, LISTEN): the claimer
claims at once, ``?wait_seconds`` readers re-read their job.

Behind pgbouncer in transaction mode LISTEN cannot work (the server session that ran it serves
other clients after the transaction): there the app runs poll-only, ``JOBQUEUE_LISTEN=false``,
and builds no listener at all (docs/deploy.md).

:meth:`Listener.run` is a supervised loop (see ``maintenance/supervisor.py``): connection faults
are retried inside it; anything else propagates to the supervisor, which logs and restarts it.
A subscriber that raises is logged and does not stop delivery to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import structlog

from jobqueue.db.engine import CONNECT_ERRORS, CONNECTION_ERRORS
from jobqueue.notify.protocol import CHANNEL, Event, QueuesRunnable, decode

log = structlog.get_logger(__name__)

PROBE_SECONDS = 10.0
MAX_RECONNECT_DELAY_SECONDS = 5.0

E = TypeVar("E", bound=Event)


class Listener:
    """Keeps ``LISTEN`` open and fans decoded events out by type.

    Args:
        dsn: a libpq-style DSN for asyncpg (``postgresql://…``).
        origin: this app's origin tag: its own "runnable" messages are not delivered.
    """

    def __init__(self, dsn: str, origin: str | None = None) -> None:
        self.dsn = dsn
        self.origin = origin
        self._connected = asyncio.Event()
        self._subscribers: dict[type[Any], list[Callable[[Any], None]]] = defaultdict(list)
        self._on_connect: list[Callable[[], None]] = []

    @property
    def connected(self) -> bool:
        """True while LISTEN is established."""
        return self._connected.is_set()

    def subscribe(self, event_type: type[E], subscriber: Callable[[E], None]) -> None:
        """Call ``subscriber(event)`` for every event of ``event_type`` (on the event loop).

        Events of type :class:`QueuesRunnable` sent by this app itself (its origin) are not
        delivered: the sender woke its claimer directly.
        """
        self._subscribers[event_type].append(subscriber)

    async def wait_connected(self, timeout_seconds: float) -> bool:
        """Wait until LISTEN is established, at most ``timeout_seconds``; True if it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout_seconds)
        return self.connected

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every (re)connect: messages may have been missed."""
        self._on_connect.append(callback)

    def deliver(self, payload: str) -> None:
        """Decode ``payload`` and hand it to the subscribers of its type (also used by tests)."""
        event = decode(payload)
        if event is None:
            return
        if isinstance(event, QueuesRunnable) and self.origin and event.origin == self.origin:
            return
        for subscriber in self._subscribers.get(type(event), ()):
            try:
                subscriber(event)
            except Exception:  # one subscriber's bug must not silence the others
                log.exception("notification_subscriber_failed", kind=type(event).__name__)

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.deliver(str(payload))

    async def run(self) -> None:
        """Listen, reconnecting with backoff on connection faults, until cancelled.

        Raises:
            anything but a connection fault (the supervisor restarts the loop).
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
            try:
                await self._listen(conn)
            except CONNECTION_ERRORS as exc:
                log.warning("listen_connection_lost", error=str(exc))
            finally:
                self._connected.clear()
                with contextlib.suppress(*CONNECTION_ERRORS):
                    conn.terminate()

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(CHANNEL, self._on_notification)
        self._connected.set()
        log.info("listening", channel=CHANNEL)
        for callback in self._on_connect:
            callback()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PROBE_SECONDS)
                break
            await conn.execute("SELECT 1", timeout=5)
        log.warning("listen_connection_lost", error="connection closed")
