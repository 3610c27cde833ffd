"""The async engine (SQLAlchemy 2 on asyncpg) and the edge helpers that hand out connections.

One engine, one pool per process. SQL runs on the asyncpg connection that SQLAlchemy's pool hands
out (``driver_connection``): asyncpg prepares and caches each statement, and a statement costs
tens of microseconds of Python instead of SQLAlchemy's hundreds. SQLAlchemy's reset-on-return is a
no-op for these connections because SQLAlchemy itself never began a transaction on them, so a
checkout costs no round trip.

Connection faults (PostgreSQL down, restarted, the pool exhausted) surface as
:class:`jobqueue.errors.DatabaseUnavailable`, and the broken connection is dropped from the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import sqlalchemy.exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jobqueue.errors import ConfigurationError, DatabaseUnavailable

Connection = asyncpg.Connection
"""The connection type every repository function takes (asyncpg's)."""

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    TimeoutError,
)
"""Errors that mean "the database is not reachable", not "the statement is wrong"."""


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
    return create_async_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_seconds,
        pool_recycle=3600,
        connect_args={"server_settings": {"application_name": "jobqueue"}},
    )


@contextlib.asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[Connection]:
    """Check out a connection (no transaction): each statement commits on its own.

    Yields:
        the asyncpg connection; it goes back to the pool on exit.

    Raises:
        DatabaseUnavailable: when no connection can be had or it breaks while in use.
    """
    sa_conn: AsyncConnection | None = None
    try:
        async with engine.connect() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            driver: Any = raw.driver_connection
            if driver is None or driver.is_closed():
                await sa_conn.invalidate()
                raise DatabaseUnavailable("the database connection was closed")
            try:
                yield driver
            except CONNECTION_ERRORS:
                await sa_conn.invalidate()
                raise
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"the database is not reachable: {exc}") from exc


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[Connection]:
    """Check out a connection and run the block in one transaction (commit on success).

    Raises:
        DatabaseUnavailable: as :func:`connect`.
    """
    async with connect(engine) as conn, conn.transaction():
        yield conn


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
            try:
                if self._driver is None or self._driver.is_closed():
                    await self._drop()
                    self._sa_conn = await self.engine.connect()
                    raw = await self._sa_conn.get_raw_connection()
                    self._driver = raw.driver_connection
                assert self._driver is not None
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
            with contextlib.suppress(*CONNECTION_ERRORS, sqlalchemy.exc.SQLAlchemyError):
                await self._sa_conn.invalidate()
                await self._sa_conn.close()
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
