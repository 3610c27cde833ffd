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

Behind a transaction-pooling proxy (pgbouncer ``pool_mode = transaction``, docs/deploy.md)
consecutive transactions of one client connection may run on different server connections, so a
statement prepared in one is unknown in the next. ``statement_cache=False`` (or
``?statement_cache_size=0`` in the URL) turns off both caches of prepared statements: asyncpg's
(then every statement is an unnamed one, which asyncpg sends again with each execution: asyncpg
documentation, "Connection.__init__", ``statement_cache_size``) and the one of SQLAlchemy's asyncpg
dialect (``prepared_statement_cache_size``, SQLAlchemy documentation, "asyncpg: Prepared
Statement Cache"). Nothing here keeps session state (``SET``, temporary tables, session advisory
locks) across statements, so no other setting is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
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

DRIVER_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    sqlalchemy.exc.SQLAlchemyError,
)
"""Every error the driver or SQLAlchemy may raise, connection faults or not. The edge helpers
below turn connection faults into :class:`DatabaseUnavailable`; anything else of these that
escapes (a statement the server refused, a prepared statement a proxy lost) is caught by the
API's last-resort handler (``api/errors.py``: 503, never the driver's text)."""

MAX_CHECKOUT_ATTEMPTS = 32
"""Checkouts tried before giving up when the pool keeps handing out closed connections; more
than a default pool holds (size + overflow = 20), and each attempt drops one dead connection."""


DRIVER_OPTIONS: dict[str, Callable[[str], int | float]] = {
    "statement_cache_size": int,
    "max_cached_statement_lifetime": int,
    "max_cacheable_statement_size": int,
    "command_timeout": float,
    "prepared_statement_cache_size": int,
}
"""URL query parameters that are options of the driver, not of the server, with their types:
asyncpg's ``connect`` keywords (seconds for the lifetime and the timeout, bytes for the size) and
SQLAlchemy's ``prepared_statement_cache_size``. SQLAlchemy hands URL query values to
``asyncpg.connect`` as strings (``statement_cache_size="0"`` fails there with a ``TypeError``),
and asyncpg's own DSN parser sends unknown ones to the server as settings (which PostgreSQL
refuses): so they are taken out of the URL and passed as typed keywords."""


def split_driver_options(url: str) -> tuple[str, dict[str, int | float]]:
    """Take the :data:`DRIVER_OPTIONS` out of ``url``'s query.

    Returns:
        ``(url_without_them, {name: typed value})``, e.g.
        ``("postgresql+asyncpg://h/db", {"statement_cache_size": 0})`` for
        ``postgresql+asyncpg://h/db?statement_cache_size=0``.

    Raises:
        ConfigurationError: a value that is not a non-negative number, or a parameter given
            twice; the message names it.
    """
    parsed = make_url(url)
    options: dict[str, int | float] = {}
    for name, convert in DRIVER_OPTIONS.items():
        if name not in parsed.query:
            continue
        raw = parsed.query[name]
        try:
            if not isinstance(raw, str):
                raise ValueError("given more than once")
            value = convert(raw)
            if not value >= 0:
                raise ValueError("negative")
        except ValueError as exc:
            raise ConfigurationError(
                f"JOBQUEUE_DATABASE_URL: ?{name}= must be one non-negative "
                f"{'integer' if convert is int else 'number'} ({exc})"
            ) from exc
        options[name] = value
    clean = parsed.difference_update_query(DRIVER_OPTIONS)
    return clean.render_as_string(hide_password=False), options


def normalise_url(url: str) -> str:
    """Return ``url`` with the asyncpg driver: ``postgresql://…`` becomes ``postgresql+asyncpg://…``.

    The query is kept, driver options included (see :data:`DRIVER_OPTIONS`: they are checked
    here, and taken out where a connection is opened).

    Raises:
        ConfigurationError: when the URL cannot be parsed, is not a PostgreSQL URL, or has a
            driver option that is not a non-negative number.
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
    normalised = parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    _libpq_arguments(split_driver_options(normalised)[0])
    return normalised


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg's ``connect`` takes, from a SQLAlchemy URL, without
    the driver options (see :data:`DRIVER_OPTIONS`)."""
    clean, _options = split_driver_options(url)
    return make_url(clean).set(drivername="postgresql").render_as_string(hide_password=False)


SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
"""libpq's ``sslmode`` values, which asyncpg's ``ssl`` keyword takes as they are."""

LIBPQ_OPTIONS = ("sslmode", "connect_timeout", "application_name")
"""libpq URL parameters that SQLAlchemy would hand to ``asyncpg.connect`` under their libpq names
(``sslmode=`` fails there with a ``TypeError``): :func:`engine_arguments` passes them as
asyncpg's ``ssl``, ``timeout`` (seconds) and ``server_settings["application_name"]``. The
LISTEN connection's DSN (:func:`asyncpg_dsn`) keeps them: asyncpg's DSN parser reads them."""


def _libpq_arguments(url: str) -> tuple[str, dict[str, Any]]:
    """Take :data:`LIBPQ_OPTIONS` out of ``url`` as asyncpg keywords.

    Raises:
        ConfigurationError: an ``sslmode`` libpq does not know, a ``connect_timeout`` that is
            not a positive number, or a parameter given twice.
    """
    parsed = make_url(url)
    values: dict[str, str] = {}
    for name in LIBPQ_OPTIONS:
        raw = parsed.query.get(name)
        if raw is None:
            continue
        if not isinstance(raw, str):
            raise ConfigurationError(f"JOBQUEUE_DATABASE_URL: ?{name}= is given more than once")
        values[name] = raw
    arguments: dict[str, Any] = {}
    if "sslmode" in values:
        if values["sslmode"] not in SSL_MODES:
            raise ConfigurationError(
                f"JOBQUEUE_DATABASE_URL: ?sslmode= must be one of {', '.join(sorted(SSL_MODES))}"
            )
        arguments["ssl"] = values["sslmode"]
    if "connect_timeout" in values:
        try:
            timeout = float(values["connect_timeout"])
            if not timeout > 0:
                raise ValueError("not positive")
        except ValueError as exc:
            raise ConfigurationError(
                "JOBQUEUE_DATABASE_URL: ?connect_timeout= must be a positive number of seconds"
            ) from exc
        arguments["timeout"] = timeout
    if "application_name" in values:
        arguments["application_name"] = values["application_name"]
    clean = parsed.difference_update_query(LIBPQ_OPTIONS)
    return clean.render_as_string(hide_password=False), arguments


def engine_arguments(url: str, statement_cache: bool = True) -> tuple[str, dict[str, Any]]:
    """The URL and the ``connect_args`` for ``create_async_engine`` (the process's engine and
    the migrations' alike).

    Args:
        url: a SQLAlchemy URL, maybe with driver options in its query.
        statement_cache: False turns off both caches of prepared statements (for pgbouncer in
            transaction mode); so does ``?statement_cache_size=0`` in ``url``.

    Returns:
        ``(url_without_driver_options, connect_args)``.

    Raises:
        ConfigurationError: as :func:`split_driver_options`, or a bad libpq parameter
            (:data:`LIBPQ_OPTIONS`).
    """
    clean, options = split_driver_options(url)
    clean, libpq = _libpq_arguments(clean)
    application_name = libpq.pop("application_name", "jobqueue")
    connect_args: dict[str, Any] = {
        "server_settings": {"application_name": application_name},
        **libpq,
        **options,
    }
    if not statement_cache or options.get("statement_cache_size") == 0:
        # Both caches off. No prepared_statement_name_func: with asyncpg's cache off,
        # SQLAlchemy's prepare() makes an unnamed statement, which asyncpg parses again in the
        # same round trip as each execution. A named one (even a unique name) is parsed in a
        # round trip of its own, after which pgbouncer may hand the next one to another server.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
    return clean, connect_args


def create_engine(
    url: str,
    pool_size: int = 10,
    pool_timeout_seconds: float = 10.0,
    *,
    statement_cache: bool = True,
) -> AsyncEngine:
    """Build the process's engine.

    Args:
        url: a SQLAlchemy URL (``postgresql+asyncpg://…``), maybe with driver options
            (:data:`DRIVER_OPTIONS`) in its query.
        pool_size: connections kept open; up to as many again may open under load.
        pool_timeout_seconds: how long a checkout waits for a free connection, in seconds, before
            it fails (and the API answers 503).
        statement_cache: False for pgbouncer in transaction mode (``JOBQUEUE_DB_STATEMENT_CACHE``);
            see :func:`engine_arguments`.

    Raises:
        ConfigurationError: a URL that is not a PostgreSQL URL, or a bad driver option.
    """
    clean, connect_args = engine_arguments(normalise_url(url), statement_cache)
    engine = create_async_engine(
        clean,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_seconds,
        pool_recycle=3600,
        json_deserializer=json.loads,
        connect_args=connect_args,
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
    async with _faults_dropped(sa_conn):
        yield await sa_conn.execution_options(isolation_level="AUTOCOMMIT")


@contextlib.asynccontextmanager
async def write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A SQLAlchemy connection in one transaction for Core writes: committed when the block
    ends normally, rolled back when it raises.

    Raises:
        DatabaseUnavailable: as :func:`connect`.
    """
    sa_conn, _driver = await checkout(engine)
    async with _faults_dropped(sa_conn), sa_conn.begin():
        yield sa_conn


@contextlib.asynccontextmanager
async def _faults_dropped(sa_conn: AsyncConnection) -> AsyncIterator[None]:
    """Give ``sa_conn`` back on exit; on a connection fault drop it from the pool first and
    raise :class:`DatabaseUnavailable` (an error of the statement itself propagates)."""
    try:
        yield
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
    claim coordinator, the enqueue coalescer): no pool checkout, check-in or greenlet
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
