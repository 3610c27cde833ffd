"""The LISTEN connection: delivers the channel's messages to subscribers in this process.

One long-lived asyncpg connection per process, outside the pool (a pooled connection is reset
and shared), listening on :data:`jobqueue.notify.protocol.CHANNEL`. After every (re)connect the
``on_connect`` callbacks run, because notifications sent while we were away are gone
(PostgreSQL manual, LISTEN): the claimer claims at once, ``?wait_seconds`` readers re-read their
job.

**The self-test.** A connection that is open is not one that hears: behind pgbouncer in
transaction mode the LISTEN runs on a server session that pgbouncer hands to other clients after
the transaction, and notifications sent to it are dropped (pgbouncer logs "got packet 'A' from
server when not linked") or reach another client. So right after LISTEN, and then every
``probe_seconds``, the listener sends a ping (``p:<token>``, :class:`~protocol.Ping`) through
the process's *pool*, and waits ``ping_timeout_seconds`` for the token to come back on the
LISTEN connection:

- it comes back: LISTEN works (``connected`` is True only from then on);
- it does not, and the LISTEN connection still answers ``SELECT 1``: LISTEN hears nothing. The
  listener logs ``listen_not_receiving`` (an error, once per episode), reports it
  (:attr:`Listener.receiving` is False, ``/readyz`` answers 503 ``"listen": "not receiving"``),
  closes the connection and reconnects with backoff; the first ping that comes back ends the
  episode (``listen_receiving``, info);
- the ping cannot be sent (the pool has no connection for it): nothing is learnt about LISTEN;
  ``SELECT 1`` on the LISTEN connection checks that it is alive, as the probe did before pings.

Why the pool and not the LISTEN connection itself: behind a quiet pgbouncer the next
transaction of the LISTEN connection usually runs on the very server session that ran LISTEN
(pgbouncer reuses the most recently used server connection first), and a session hears its own
NOTIFY: measured with pgbouncer 1.18, 3 of 3 pings sent on the LISTEN connection came back
while 3 of 3 sent from another client connection were lost. A ping from the pool travels as
every other process's notifications do, so it comes back only when those would.

While LISTEN is not connected (reconnecting, or not receiving) the process falls back to what
poll-only mode does, with nothing to switch: the claimer polls every
``JOBQUEUE_POLL_INTERVAL_SECONDS`` in any mode (worker/coordinator.py), so other processes'
jobs are found within one interval; a cancel of a job it runs arrives with its next heartbeat;
and ``?wait_seconds`` readers, who otherwise read only when woken, re-read their job at every
poll tick for as long as :attr:`Listener.connected` is False (``service/_reads.py``:
``Reads.wait``), so another process's finish is seen within one interval.

Behind pgbouncer in transaction mode the app is meant to run poll-only, ``JOBQUEUE_LISTEN=false``,
and build no listener at all (docs/deploy.md); the self-test catches the deployment that forgot.

:meth:`Listener.run` is a supervised loop (see ``maintenance/supervisor.py``): connection faults
and a LISTEN that hears nothing are handled inside it; anything else propagates to the
supervisor, which logs and restarts it. A subscriber that raises is logged and does not stop
delivery to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db import queries
from jobqueue.db.engine import CONNECT_ERRORS, CONNECTION_ERRORS, connect
from jobqueue.errors import DatabaseUnavailable
from jobqueue.notify.protocol import (
    CHANNEL,
    Event,
    Ping,
    QueuesRunnable,
    decode,
    encode,
    new_ping_token,
)

log = structlog.get_logger(__name__)

PROBE_SECONDS = 10.0
"""How often an established LISTEN connection is tested with a ping, in seconds."""

PING_TIMEOUT_SECONDS = 5.0
"""How long a sent ping may take to come back before LISTEN counts as not receiving, in
seconds: a round trip takes milliseconds; the margin covers a busy event loop or database."""

STATEMENT_TIMEOUT_SECONDS = 5.0
"""The longest wait for ``SELECT 1`` on the LISTEN connection, in seconds."""

MAX_RECONNECT_DELAY_SECONDS = 5.0

NOT_RECEIVING_HINT = (
    "LISTEN receives no notifications: behind pgbouncer in transaction mode? "
    "set JOBQUEUE_LISTEN=false (docs/deploy.md)"
)

_SEND_FAULTS: tuple[type[BaseException], ...] = (DatabaseUnavailable, *CONNECT_ERRORS)
"""Why a ping may not be sent: the pool has no connection, or the statement failed."""

E = TypeVar("E", bound=Event)


class Listener:
    """Keeps ``LISTEN`` open, tests that it hears, and fans decoded events out by type.

    Args:
        dsn: a libpq-style DSN for asyncpg (``postgresql://…``).
        engine: the process's pool; the pings are sent through it (see the module docstring).
        origin: this app's origin tag: its own "runnable" messages are not delivered.
        probe_seconds: time between two pings on an established connection, seconds.
        ping_timeout_seconds: how long a ping may take to come back, seconds.
    """

    def __init__(
        self,
        dsn: str,
        engine: AsyncEngine,
        origin: str | None = None,
        *,
        probe_seconds: float = PROBE_SECONDS,
        ping_timeout_seconds: float = PING_TIMEOUT_SECONDS,
    ) -> None:
        self.dsn = dsn
        self.engine = engine
        self.origin = origin
        self.probe_seconds = probe_seconds
        self.ping_timeout_seconds = ping_timeout_seconds
        self._connected = asyncio.Event()
        self._deaf_since: float | None = None
        self._pings: dict[str, asyncio.Event] = {}
        self._subscribers: dict[type[Any], list[Callable[[Any], None]]] = defaultdict(list)
        self._on_connect: list[Callable[[], None]] = []

    @property
    def connected(self) -> bool:
        """True while LISTEN is established and the last ping on it came back: notifications
        sent now reach this process."""
        return self._connected.is_set()

    @property
    def receiving(self) -> bool:
        """False from a ping that did not come back on a live LISTEN connection until one comes
        back again, across reconnects (the "not receiving" episode); True otherwise, also
        while the connection is lost or before the first ping (nothing says it hears nothing)."""
        return self._deaf_since is None

    def subscribe(self, event_type: type[E], subscriber: Callable[[E], None]) -> None:
        """Call ``subscriber(event)`` for every event of ``event_type`` (on the event loop).

        Events of type :class:`QueuesRunnable` sent by this app itself (its origin) are not
        delivered: the sender woke its claimer directly. :class:`~protocol.Ping` events are
        the listener's own and reach no subscriber.
        """
        self._subscribers[event_type].append(subscriber)

    async def wait_connected(self, timeout_seconds: float) -> bool:
        """Wait until LISTEN is established and its first ping came back, at most
        ``timeout_seconds``; True if it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout_seconds)
        return self.connected

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every (re)connect, once LISTEN is established (before its
        ping comes back): messages may have been missed."""
        self._on_connect.append(callback)

    def deliver(self, payload: str) -> None:
        """Decode ``payload`` and hand it to the subscribers of its type (also used by tests);
        a ping of ours marks its token as come back, anyone else's is ignored."""
        event = decode(payload)
        if event is None:
            return
        if isinstance(event, Ping):
            came_back = self._pings.get(event.token)
            if came_back is not None:
                came_back.set()
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
        """Listen until cancelled: reconnect at once after a lost connection, with backoff
        (0.1 s doubling to :data:`MAX_RECONNECT_DELAY_SECONDS`) after a failed connect or a
        LISTEN that hears nothing.

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
            try:
                await self._listen(conn)
            except CONNECTION_ERRORS as exc:
                log.warning("listen_connection_lost", error=str(exc))
            finally:
                self._connected.clear()
                with contextlib.suppress(*CONNECTION_ERRORS):
                    conn.terminate()
            if self.receiving:
                delay = 0.1
                continue
            # Not receiving: another connection through the same pooler will most likely hear
            # nothing either; try again, ever less often.
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """LISTEN on ``conn`` and test it until it is lost (returns or raises a connection
        fault) or hears nothing (returns; :attr:`receiving` is then False)."""
        lost = asyncio.Event()

        def terminated(_conn: object) -> None:
            self._connected.clear()  # at once: /readyz must not say "ok" until we reconnect
            lost.set()

        conn.add_termination_listener(terminated)
        await conn.add_listener(CHANNEL, self._on_notification)
        for callback in self._on_connect:
            callback()
        while not lost.is_set():
            if not await self._self_test(conn, lost):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self.probe_seconds)
        log.warning("listen_connection_lost", error="connection closed")

    async def _self_test(self, conn: asyncpg.Connection, lost: asyncio.Event) -> bool:
        """One ping: False when it did not come back on a live ``conn`` (not receiving), True
        otherwise. ``lost`` is set when ``conn`` is terminated (the wait ends early).

        Raises:
            a connection fault of ``conn`` (it is lost).
        """
        token = new_ping_token()
        came_back = asyncio.Event()
        self._pings[token] = came_back  # before sending: the ping may beat the send's reply
        try:
            sent_at = time.monotonic()
            try:
                async with connect(self.engine) as sender:
                    await queries.notify_raw(sender, queries.Notice(CHANNEL, encode(Ping(token))))
            except _SEND_FAULTS as exc:
                # The database or the pool is at fault, not LISTEN: only check ``conn`` lives.
                log.warning("listen_ping_not_sent", error=str(exc))
                await conn.execute("SELECT 1", timeout=STATEMENT_TIMEOUT_SECONDS)
                return True
            await _first_of(came_back, lost, self.ping_timeout_seconds)
        finally:
            del self._pings[token]
        if came_back.is_set():
            self._heard(round((time.monotonic() - sent_at) * 1000, 1))
            return True
        # Unanswered: a lost connection fails here (a connection fault: reconnect at once); a
        # live one hears nothing.
        await conn.execute("SELECT 1", timeout=STATEMENT_TIMEOUT_SECONDS)
        self._not_heard()
        return False

    def _heard(self, round_trip_ms: float) -> None:
        if not self._connected.is_set():
            log.info("listening", channel=CHANNEL, ping_ms=round_trip_ms)
        if self._deaf_since is not None:
            log.info(
                "listen_receiving",
                not_receiving_seconds=round(time.monotonic() - self._deaf_since, 1),
            )
            self._deaf_since = None
        self._connected.set()

    def _not_heard(self) -> None:
        self._connected.clear()
        if self._deaf_since is None:  # once per episode: the ping repeats every reconnect
            self._deaf_since = time.monotonic()
            log.error(
                "listen_not_receiving",
                detail=NOT_RECEIVING_HINT,
                channel=CHANNEL,
                ping_timeout_seconds=self.ping_timeout_seconds,
            )


async def _first_of(one: asyncio.Event, other: asyncio.Event, timeout_seconds: float) -> None:
    """Wait until ``one`` or ``other`` is set, at most ``timeout_seconds``."""
    waits = [asyncio.ensure_future(one.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
