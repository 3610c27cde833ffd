"""Can the database be reached? One connection opened at start, and one line that says why not.

``jobqueue serve`` and ``jobqueue migrate`` call :func:`check_database` before anything else
touches the database, so that a server that is down, a database that does not exist or a
refused login stops them with a sentence and a hint instead of a driver's traceback. The
sentence never holds the URL's password.
"""

from __future__ import annotations

import asyncio
import errno
import shlex
import socket
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from jobqueue.db.engine import CONNECT_ERRORS, engine_arguments, normalise_url
from jobqueue.errors import DatabaseUnavailable

CONNECT_TIMEOUT_SECONDS = 10.0
"""How long :func:`check_database` waits for a connection, in seconds (asyncpg's own default is
60 s: too long for a command that then only says it could not connect)."""

_DEFAULT_PORT = 5432
# SQLSTATE classes a server answers a new connection with: connection exception (08), invalid
# authorization (28), invalid catalog name (3D), insufficient resources (53), object not in
# prerequisite state (55: "database … is not currently accepting connections"), operator
# intervention (57: shutting down, starting up). Any other error is a statement's.
_CONNECT_SQLSTATE_CLASSES = ("08", "28", "3D", "53", "55", "57")
_MIN_SCRUBBED_PASSWORD = 4  # a shorter password is not looked for (it would mangle words)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: ``__cause__``/``__context__`` and SQLAlchemy's ``orig``."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                pending.append(inner)


def _target(url: URL) -> str:
    """``host:port`` of ``url`` as a person would write it, e.g. ``127.0.0.1:5432``."""
    host = url.host
    if host is None:
        query_host = url.query.get("host")
        host = query_host if isinstance(query_host, str) else "localhost"
    if ":" in host and not host.startswith("/"):
        host = f"[{host}]"
    return f"{host}:{url.port or _DEFAULT_PORT}"


def _createdb(url: URL, database: str) -> str:
    """The ``createdb`` command that makes ``database`` where ``url`` points (no password)."""
    words = ["createdb"]
    if url.host:
        words += ["-h", url.host]
    if url.port:
        words += ["-p", str(url.port)]
    if url.username:
        words += ["-U", url.username]
    return " ".join(shlex.quote(word) for word in [*words, database])


def _one_line(text: str, password: str | None) -> str:
    """``text`` on one line, with ``password`` (when it is long enough to look for) hidden."""
    line = " ".join(text.split())
    if password and len(password) >= _MIN_SCRUBBED_PASSWORD:
        line = line.replace(password, "***")
    return line


def _refused(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionRefusedError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return True
    # asyncio reports several addresses that all failed (localhost: ::1 and 127.0.0.1) as one
    # OSError without an errno, "Multiple exceptions: [Errno 111] Connect call failed …".
    return isinstance(exc, OSError) and f"[Errno {errno.ECONNREFUSED}]" in str(exc)


def explain_connect_error(
    exc: BaseException, url: str, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS
) -> str | None:
    """One line that says why a connection to ``url`` could not be opened, and what to do.

    Args:
        exc: what opening the connection raised (a SQLAlchemy error wrapping the driver's is
            looked through).
        url: the database URL (SQLAlchemy form); its password never appears in the line.
        timeout_seconds: the connect timeout that was used, for the message of a timeout.

    Returns:
        e.g. ``database "jobs" does not exist on 127.0.0.1:5432: create it with createdb -h
        127.0.0.1 -p 5432 -U postgres jobs, or fix the name in JOBQUEUE_DATABASE_URL``; None
        when ``exc`` is not an error of opening a connection (a statement's error, say).
    """
    parsed = make_url(url)
    target = _target(parsed)
    password = parsed.password if isinstance(parsed.password, str) else None
    for cause in _causes(exc):
        text = _one_line(str(cause), password)
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            name = parsed.database or ""
            return (
                f'database "{name}" does not exist on {target}: create it with '
                f"{_createdb(parsed, name)}, or fix the name in JOBQUEUE_DATABASE_URL"
            )
        if isinstance(cause, asyncpg.InvalidPasswordError):
            return (
                f"PostgreSQL at {target} refused the login: {text}: check the user and password "
                "in JOBQUEUE_DATABASE_URL"
            )
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
            return (
                f"PostgreSQL at {target} refused the connection: {text}: check the user in "
                "JOBQUEUE_DATABASE_URL and the server's pg_hba.conf"
            )
        if isinstance(cause, asyncpg.CannotConnectNowError):
            return f"PostgreSQL at {target} does not accept connections yet: {text}: retry soon"
        if isinstance(cause, asyncpg.TooManyConnectionsError):
            return (
                f"PostgreSQL at {target} refused the connection: {text}: close other clients, "
                "raise the server's max_connections, or lower JOBQUEUE_DB_POOL_SIZE"
            )
        if isinstance(cause, asyncpg.PostgresError):
            sqlstate = str(getattr(cause, "sqlstate", "") or "")
            if sqlstate.startswith(_CONNECT_SQLSTATE_CLASSES):
                return f"PostgreSQL at {target} refused the connection: {text}"
            return None
        if isinstance(cause, socket.gaierror):
            host = parsed.host or "localhost"
            return (
                f"could not resolve the database host {host!r} ({cause.strerror}): check the "
                "host in JOBQUEUE_DATABASE_URL"
            )
        if isinstance(cause, TimeoutError):
            return (
                f"could not connect to {target} within {timeout_seconds:g} s: is the host "
                "reachable and PostgreSQL listening on that port? (JOBQUEUE_DATABASE_URL)"
            )
        if _refused(cause):
            return (
                f"could not connect to {target}: connection refused: is PostgreSQL running and "
                "listening on that port? (JOBQUEUE_DATABASE_URL)"
            )
        if isinstance(cause, OSError):
            reason = _one_line(cause.strerror or str(cause), password)
            return (
                f"could not connect to {target}: {reason}: is PostgreSQL running there? "
                "(JOBQUEUE_DATABASE_URL)"
            )
    return None


async def check_connection(
    url: str, *, statement_cache: bool = True, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS
) -> None:
    """Open one connection to ``url`` the way the service does, and close it.

    Args:
        url: the database URL (``postgresql://`` or ``postgresql+asyncpg://``, driver options
            in its query allowed).
        statement_cache: as ``JOBQUEUE_DB_STATEMENT_CACHE`` (pgbouncer in transaction mode).
        timeout_seconds: how long to wait for the connection, in seconds.

    Raises:
        DatabaseUnavailable: no connection could be opened; the message is one line from
            :func:`explain_connect_error` (never the password).
        ConfigurationError: ``url`` is not a PostgreSQL URL or has a bad driver option.
    """
    clean, connect_args = engine_arguments(normalise_url(url), statement_cache)
    engine = create_async_engine(
        clean, poolclass=NullPool, connect_args={**connect_args, "timeout": timeout_seconds}
    )
    try:
        async with asyncio.timeout(timeout_seconds + 1), engine.connect():
            pass
    except CONNECT_ERRORS as exc:
        message = explain_connect_error(exc, url, timeout_seconds)
        if message is None:
            parsed = make_url(url)
            password = parsed.password if isinstance(parsed.password, str) else None
            reason = _one_line(f"{type(exc).__name__}: {exc}", password)
            message = f"could not connect to {_target(parsed)}: {reason}"
        raise DatabaseUnavailable(message) from None
    finally:
        await engine.dispose()


def check_database(
    url: str, *, statement_cache: bool = True, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS
) -> None:
    """:func:`check_connection` for code without an event loop (the CLI); blocking, for at
    most about ``timeout_seconds`` seconds.

    Raises:
        DatabaseUnavailable: as :func:`check_connection`.
        ConfigurationError: as :func:`check_connection`.
    """
    asyncio.run(
        check_connection(url, statement_cache=statement_cache, timeout_seconds=timeout_seconds)
    )
