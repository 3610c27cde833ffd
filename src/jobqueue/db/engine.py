"""The async engine (SQLAlchemy 2 on asyncpg) and the edge helpers that hand out connections.

One engine, one pool per process. SQL runs on the asyncpg connection that SQLAlchemy's pool hands
out (``driver_connection``): asyncpg prepares and caches each statement, and a statement costs
tens of microseconds of Python instead of SQLAlchemy's hundreds. SQLAlchemy's reset-on-return is a
no-op for these connections because SQLAlchemy itself never began a transaction on them, so a
checkout costs no round trip.

Connection faults (PostgreSQL down, restarted, refusing connections, every backend terminated,
the pool exhausted) surface as :class:`jobqueue.errors.DatabaseUnavailable`, and the broken
connection is dropped from the pool. A pooled connection found closed at checkout (its backend was
terminated while it was idle) is dropped and another one taken, so a recovered database does not
answer one 503 per stale connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jobqueue.errors import ConfigurationError, DatabaseUnavailable

Connection = asyncpg.Connection
"""The connection type every hand-written statement takes (asyncpg's)."""

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # A backend terminated while a statement was being sent leaves asyncpg's protocol in a state
    # it reports as an internal error ("cannot switch to state …"): the connection is unusable.
    asyncpg.InternalClientError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    TimeoutError,
)
"""Errors that mean "the database is not reachable", not "the statement is wrong"."""

CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.PostgresError,
    sqlalchemy.exc.DBAPIError,
)
"""Errors while opening a connection: besides the above, any error the server answers a new
connection with (``database … is not currently accepting connections``, ``too many clients``,
a database that is gone) means the database cannot be used now. No statement of ours has run."""

MAX_CHECKOUT_ATTEMPTS = 32
"""Checkouts tried before giving up when the pool keeps handing out closed connections; more
than a default pool holds (size + overflow = 20), and each attempt drops one dead connection."""


def normalise_url(url: str) -> str:
    """Return ``url`` with the asyncpg driver: ``postgresql://…`` becomes ``postgresql+asyncpg://…``.

    Raises:
        ConfigurationError: when the URL cannot be parsed or is not a PostgreSQL URL.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as exc:
        raise ConfigurationError(f"JOBQUEUE_DATABASE_URL is not a valid URL: {exc}") from exc
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigurationError(
            "JOBQUEUE_DATABASE_URL must be a PostgreSQL URL, e.g. "
            "postgresql+asyncpg://user:password@127.0.0.1:5432/jobqueue"
        )
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg's ``connect`` takes, from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, pool_size: int = 10, pool_timeout_seconds: float = 10.0) -> AsyncEngine:
    """Build the process's engine.

    Args:
        url: a SQLAlchemy URL (``postgresql+asyncpg://…``).
        pool_size: connections kept open; up to as many again may open under load.
        pool_timeout_seconds: how long a checkout waits for a free connection, in seconds, before
            it fails (and the API answers 503).
    """
    engine = create_async_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_seconds,
        pool_recycle=3600,
        json_deserializer=json.loads,
        connect_args={"server_settings": {"application_name": "jobqueue"}},
    )
    event.listen(engine.sync_engine, "connect", _set_json_codecs)
    return engine


def _set_json_codecs(dbapi_connection: Any, _record: object) -> None:
    """The JSON contract every query relies on, set on each new connection (after the dialect's
    own set-up, so it is ours whatever a SQLAlchemy release does): a ``json``/``jsonb``
    parameter is JSON *text* (SQLAlchemy's JSON types serialise before binding; hand-written
    statements pass text and cast), and a ``json``/``jsonb`` result is the decoded Python value
    (``json.loads``). Binary format: PostgreSQL's jsonb binary form is a version byte (1) and
    the text."""

    async def setup(conn: asyncpg.Connection) -> None:
        await conn.set_type_codec(
            "json", encoder=str.encode, decoder=_decode_json, schema="pg_catalog", format="binary"
        )
        await conn.set_type_codec(
            "jsonb",
            encoder=_encode_jsonb,
            decoder=_decode_jsonb,
            schema="pg_catalog",
            format="binary",
        )

    dbapi_connection.run_async(setup)


def _decode_json(data: bytes) -> Any:
    return json.loads(data)


def _encode_jsonb(text: str) -> bytes:
    return b"\x01" + text.encode()


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


async def checkout(engine: AsyncEngine) -> tuple[AsyncConnection, Connection]:
    """Check out an open pooled connection; closed ones met on the way are dropped.

    Returns:
        ``(sqlalchemy_connection, asyncpg_connection)``; close the first to give it back.

    Raises:
        DatabaseUnavailable: no connection could be opened (any of :data:`CONNECT_ERRORS`, the
            pool timeout included), or every one tried was closed.
    """
    for _ in range(MAX_CHECKOUT_ATTEMPTS):
        try:
            sa_conn = await engine.connect()
        except sqlalchemy.exc.TimeoutError as exc:
            raise DatabaseUnavailable(
                "every database connection of this process is busy (the pool is exhausted; "
                f"JOBQUEUE_DB_POOL_SIZE, JOBQUEUE_DB_POOL_TIMEOUT_SECONDS): {exc}"
            ) from exc
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"the database is not reachable: {exc}") from exc
        raw = await sa_conn.get_raw_connection()  # the pooled connection itself: no I/O
        driver: Any = raw.driver_connection
        if driver is not None and not driver.is_closed():
            return sa_conn, driver
        await discard(sa_conn)
    raise DatabaseUnavailable("the database connection was closed")


async def discard(sa_conn: AsyncConnection) -> None:
    """Drop a broken connection: invalidated in the pool (never handed out again), closed."""
    with contextlib.suppress(*CONNECTION_ERRORS, sqlalchemy.exc.SQLAlchemyError):
        await sa_conn.invalidate()
    with contextlib.suppress(*CONNECTION_ERRORS, sqlalchemy.exc.SQLAlchemyError):
        await sa_conn.close()


@contextlib.asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[Connection]:
    """Check out a connection (no transaction): each statement commits on its own.

    Yields:
        the asyncpg connection; it goes back to the pool on exit.

    Raises:
        DatabaseUnavailable: when no connection can be had or it breaks while in use.
    """
    sa_conn, driver = await checkout(engine)
    try:
        yield driver
    except CONNECTION_ERRORS as exc:
        await discard(sa_conn)
        raise DatabaseUnavailable(f"the database is not reachable: {exc}") from exc
    finally:
        await sa_conn.close()


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[Connection]:
    """Check out a connection and run the block in one transaction (commit on success).

    Raises:
        DatabaseUnavailable: as :func:`connect`.
    """
    async with connect(engine) as conn, conn.transaction():
        yield conn


@contextlib.asynccontextmanager
async def read(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A SQLAlchemy connection for Core reads, in autocommit mode: each statement is its own
    transaction, so a read costs one round trip (no BEGIN, no ROLLBACK).

    Raises:
        DatabaseUnavailable: as :func:`connect`.
    """
    sa_conn, _driver = await checkout(engine)
    try:
        yield await sa_conn.execution_options(isolation_level="AUTOCOMMIT")
    except CONNECTION_ERRORS as exc:
        await discard(sa_conn)
        raise DatabaseUnavailable(f"the database is not reachable: {exc}") from exc
    except sqlalchemy.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        await discard(sa_conn)
        raise DatabaseUnavailable(f"the database is not reachable: {exc.orig}") from exc
    finally:
        await sa_conn.close()


@contextlib.asynccontextmanager
async def write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A SQLAlchemy connection in one transaction for Core writes: committed when the block
    ends normally, rolled back when it raises.

    Raises:
        DatabaseUnavailable: as :func:`connect`.
    """
    sa_conn, _driver = await checkout(engine)
    try:
        async with sa_conn.begin():
            yield sa_conn
    except CONNECTION_ERRORS as exc:
        await discard(sa_conn)
        raise DatabaseUnavailable(f"the database is not reachable: {exc}") from exc
    except sqlalchemy.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        await discard(sa_conn)
        raise DatabaseUnavailable(f"the database is not reachable: {exc.orig}") from exc
    finally:
        await sa_conn.close()


class HeldConnection:
    """One pooled connection kept checked out for a single-flight user of the hot path (the
    dispatcher, the completer, the enqueue coalescer): no pool checkout, check-in or greenlet
    hop per statement (~150 µs each in SQLAlchemy's async pool), and asyncpg's statement cache
    stays warm. A lock lets one caller use it at a time.

    A connection fault drops the connection (it is invalidated in the pool) and the next use
    checks out a fresh one.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sa_conn: AsyncConnection | None = None
        self._driver: Connection | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[Connection]:
        """The held asyncpg connection (no transaction: each statement commits on its own).

        Raises:
            DatabaseUnavailable: when no connection can be had or it breaks while in use.
        """
        async with self._lock:
            if self._driver is None or self._driver.is_closed():
                await self._drop()
                self._sa_conn, self._driver = await checkout(self.engine)
            try:
                yield self._driver
            except CONNECTION_ERRORS as exc:
                await self._drop()
                raise DatabaseUnavailable(f"the database is not reachable: {exc}") from exc
            except asyncio.CancelledError:
                # A statement may have been cut off half-way: never reuse this connection
                # (the next use invalidates it; no await here, we are being cancelled).
                self._driver = None
                raise

    async def _drop(self) -> None:
        if self._sa_conn is not None:
            await discard(self._sa_conn)
        self._sa_conn = None
        self._driver = None

    async def close(self) -> None:
        """Give the connection back to the pool (shutdown)."""
        async with self._lock:
            if self._sa_conn is not None:
                with contextlib.suppress(*CONNECTION_ERRORS, sqlalchemy.exc.SQLAlchemyError):
                    await self._sa_conn.close()
            self._sa_conn = None
            self._driver = None
