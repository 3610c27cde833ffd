"""The LISTEN self-test against PostgreSQL directly: pings come back; a listener whose LISTEN
hears nothing says so once per episode, reconnects, and is healthy again when pings return.

Deafness is made in our own code, not in the database: the listener's notification callback
is replaced by one that drops every message, so its pings never come back (what pgbouncer in
transaction mode does to them, tests/e2e/test_pgbouncer.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import asyncpg
import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db.engine import asyncpg_dsn, create_engine
from jobqueue.notify import Listener
from jobqueue.notify.listener import NOT_RECEIVING_HINT
from tests.helpers import wait_until


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, 2)
    yield engine
    await engine.dispose()


class Running:
    """A listener's ``run`` as a task, with its (re)connects counted."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.connects = 0
        listener.on_connect(self._connected)
        self.task = asyncio.create_task(listener.run())

    def _connected(self) -> None:
        self.connects += 1

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def deafen(listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop every notification its next connections receive."""

    def drop(*_args: object) -> None:
        return None

    monkeypatch.setattr(listener, "_on_notification", drop)


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_listener_direct_pings_come_back_connected_and_receiving(
    database_url: str, engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    listener = Listener(asyncpg_dsn(database_url), engine, probe_seconds=0.1)
    seen: asyncio.Queue[str] = asyncio.Queue()
    await db.add_listener("jobqueue", lambda *args: seen.put_nowait(args[3]))
    with structlog.testing.capture_logs() as logs:
        running = Running(listener)
        try:
            # Three pings on the wire, each 0.1 s after the last came back.
            pings = [await asyncio.wait_for(seen.get(), 5) for _ in range(3)]
            assert all(re.fullmatch(r"p:[0-9a-f]{16}", ping) for ping in pings)
            assert len(set(pings)) == 3
            assert (listener.connected, listener.receiving, running.connects) == (True, True, 1)
        finally:
            await running.stop()
    listening = events(logs, "listening")
    assert [(e["log_level"], e["channel"]) for e in listening] == [("info", "jobqueue")]
    assert 0 <= listening[0]["ping_ms"] < 5000
    assert events(logs, "listen_not_receiving") == []


async def test_listener_deaf_is_not_receiving_logged_once_per_episode(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = Listener(
        asyncpg_dsn(database_url), engine, probe_seconds=0.1, ping_timeout_seconds=0.3
    )
    deafen(listener, monkeypatch)
    with structlog.testing.capture_logs() as logs:
        running = Running(listener)
        try:

            async def third_connection() -> bool:
                return running.connects >= 3

            # Three connections: at least two pings went unanswered, one episode.
            await wait_until(third_connection, 10, "two reconnects after unanswered pings")
            assert (listener.connected, listener.receiving) == (False, False)
        finally:
            await running.stop()
    assert [
        (e["log_level"], e["detail"], e["ping_timeout_seconds"])
        for e in events(logs, "listen_not_receiving")
    ] == [("error", NOT_RECEIVING_HINT, 0.3)]
    assert events(logs, "listening") == []


async def test_listener_deaf_then_hearing_again_is_receiving_and_says_so(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = Listener(
        asyncpg_dsn(database_url), engine, probe_seconds=0.1, ping_timeout_seconds=0.3
    )
    deafen(listener, monkeypatch)
    with structlog.testing.capture_logs() as logs:
        running = Running(listener)
        try:

            async def not_receiving() -> bool:
                return not listener.receiving

            await wait_until(not_receiving, 5, "the first ping unanswered")
            monkeypatch.undo()  # the next connection hears again

            async def healthy() -> bool:
                return listener.connected and listener.receiving

            await wait_until(healthy, 10, "a ping back after a reconnect")
        finally:
            await running.stop()
    assert len(events(logs, "listen_not_receiving")) == 1
    receiving = events(logs, "listen_receiving")
    assert [e["log_level"] for e in receiving] == ["info"]
    # From the unanswered ping to the next one back: at least the first backoff, 0.1 s.
    assert 0.1 <= receiving[0]["not_receiving_seconds"] < 10
    assert len(events(logs, "listening")) == 1
