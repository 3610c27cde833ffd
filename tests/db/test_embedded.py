"""Tests of the embedded PostgreSQL (``jobqueue.db.embedded``) against a real server.

Each test gets its own data directory (``data_dir``); every server a test starts is stopped by
the fixtures even when the test fails. Run as root, they also check that PostgreSQL itself runs
as pgserver's unprivileged system user, and that an unprivileged user can start it too.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from jobqueue import embedded
from jobqueue.embedded import EmbeddedPostgres, start_embedded
from jobqueue.errors import ConfigurationError

SRC_DIR = Path(__file__).resolve().parents[2] / "src"
# Unix sockets hold at most 107 bytes of path (unix(7)).
SOCKET_PATH_LIMIT = 107

# Started in a child interpreter: start the server, commit a row, report, then wait to be killed.
CHILD_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from jobqueue.embedded import start_embedded

    emb = start_embedded(Path(sys.argv[1]))

    async def main() -> None:
        engine = create_async_engine(emb.url)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE marks (note text)"))
            await conn.execute(text("INSERT INTO marks VALUES ('before kill')"))
        await engine.dispose()

    asyncio.run(main())
    print("ready", flush=True)
    time.sleep(600)
    """
)


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid in ``postmaster.pid``; None when the file is absent (server stopped) or garbled."""
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    if pid <= 0:  # a standalone backend (initdb) writes its pid negated
        return False
    try:
        return str(pgdata) in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


def _kill_leftover_server(pgdata: Path) -> None:
    """Fast-shutdown (SIGINT) a server still running on ``pgdata``; only ever one we started."""
    pid = _postmaster_pid(pgdata)
    if pid is not None and _is_postmaster_of(pid, pgdata):
        os.kill(pid, signal.SIGINT)
        _wait_gone(pid, 10.0)


def _wait_gone(pid: int, timeout_seconds: float) -> None:
    """Poll every 10 ms until ``pid`` has exited; a zombie counts as exited.

    A killed postmaster is reparented to PID 1, which may take a second or more to reap it
    (psutil's own ``wait`` also backs off to long polling steps).
    """
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)


async def _fetch(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(text(sql))).all()]
    finally:
        await engine.dispose()


def _fetch_sync(url: str, sql: str) -> list[tuple[object, ...]]:
    return asyncio.run(_fetch(url, sql))


def _child_env() -> dict[str, str]:
    paths = [str(SRC_DIR), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh, existing directory for one test's embedded data; no server runs on it afterwards.

    As root it lies outside pytest's base temp: PostgreSQL then runs as pgserver's system user,
    which must traverse every parent directory (pgserver adds o+rx to them at start), and any
    pytest session starting meanwhile resets /tmp/pytest-of-root to 0700, locking that user out.
    """
    own = os.geteuid() == 0
    path = Path(tempfile.mkdtemp(prefix="jobqueue-embedded-test-")) if own else tmp_path
    try:
        yield path
    finally:
        for pid_file in path.rglob("postmaster.pid"):
            _kill_leftover_server(pid_file.parent)
        if own:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_child(data_dir: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start child interpreters holding the server on a data directory after committing one row.

    Afterwards every child is killed; ``data_dir`` (a dependency, so torn down later) then shuts
    down any server they left running.
    """
    started: list[subprocess.Popen[str]] = []

    def start(data_dir: Path) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD_SCRIPT, str(data_dir)],
            stdout=subprocess.PIPE,
            env=_child_env(),
            text=True,
        )
        started.append(child)
        assert child.stdout is not None
        for line in child.stdout:  # the log goes to stdout too
            if line.strip() == "ready":
                return child
        raise AssertionError(f"the child exited with {child.wait()} before it was ready")

    yield start
    for child in started:
        child.kill()
        child.wait()


@pytest.fixture
def handles(data_dir: Path) -> Iterator[list[EmbeddedPostgres]]:
    """Handles a test appends to; all stopped afterwards (before ``data_dir`` is torn down)."""
    started: list[EmbeddedPostgres] = []
    yield started
    for handle in started:
        handle.stop()


def _start(handles: list[EmbeddedPostgres], data_dir: Path) -> EmbeddedPostgres:
    handle = start_embedded(data_dir)
    handles.append(handle)
    return handle


async def test_data_survives_stop_and_start(
    data_dir: Path, handles: list[EmbeddedPostgres]
) -> None:
    missing = data_dir / "data"  # start_embedded creates it

    first = await asyncio.to_thread(_start, handles, missing)
    assert first.url.startswith("postgresql+asyncpg://")
    assert first.data_dir == missing.resolve()
    engine = create_async_engine(first.url)
    async with engine.begin() as conn:
        assert (await conn.execute(text("SELECT current_database(), 1"))).one() == ("jobqueue", 1)
        await conn.execute(text("CREATE TABLE kept (id int PRIMARY KEY, note text)"))
        await conn.execute(text("INSERT INTO kept VALUES (1, 'hello')"))
    await engine.dispose()
    pid = _postmaster_pid(first.pgdata)
    assert pid is not None
    if os.geteuid() == 0:
        # PostgreSQL refuses root; pgserver runs it as its own system user.
        assert psutil.Process(pid).uids().real != 0

    first.stop()
    assert _postmaster_pid(first.pgdata) is None
    assert not psutil.pid_exists(pid) or not _is_postmaster_of(pid, first.pgdata)
    first.stop()  # idempotent

    second = await asyncio.to_thread(_start, handles, missing)
    assert second.url == first.url
    assert await _fetch(second.url, "SELECT id, note FROM kept") == [(1, "hello")]
    second.stop()
    assert _postmaster_pid(second.pgdata) is None


def test_deep_data_dir_uses_a_short_socket_path(
    data_dir: Path, handles: list[EmbeddedPostgres]
) -> None:
    data_dir = data_dir.joinpath(*["d" * 40] * 4)
    assert len(str(data_dir / "pgdata" / ".s.PGSQL.5432")) > SOCKET_PATH_LIMIT

    handle = _start(handles, data_dir)

    socket_dir = handle.url.split("host=", 1)[1].split("&", 1)[0]
    assert len(socket_dir + "/.s.PGSQL.5432") <= SOCKET_PATH_LIMIT
    assert _fetch_sync(handle.url, "SELECT 1") == [(1,)]


def test_two_handles_in_one_process_share_the_server(
    data_dir: Path, handles: list[EmbeddedPostgres]
) -> None:
    first = _start(handles, data_dir)
    second = _start(handles, data_dir)

    first.stop()
    assert _fetch_sync(second.url, "SELECT 1") == [(1,)]
    second.stop()
    assert _postmaster_pid(second.pgdata) is None


def test_attaches_after_the_owner_was_killed_and_stops_the_orphan(
    data_dir: Path,
    handles: list[EmbeddedPostgres],
    start_child: Callable[[Path], subprocess.Popen[str]],
) -> None:
    child = start_child(data_dir)
    pgdata = data_dir / "pgdata"
    server_pid = _postmaster_pid(pgdata)
    assert server_pid is not None
    child.kill()  # SIGKILL: no atexit, the server is orphaned and keeps running
    child.wait(10)
    assert _is_postmaster_of(server_pid, pgdata)

    handle = _start(handles, data_dir)

    assert _postmaster_pid(pgdata) == server_pid  # attached, not restarted
    assert _fetch_sync(handle.url, "SELECT note FROM marks") == [("before kill",)]
    handle.stop()  # the killed owner's handle no longer counts: we are the last one
    assert _postmaster_pid(pgdata) is None
    assert not _is_postmaster_of(server_pid, pgdata)


def test_restarts_after_owner_and_server_were_killed(
    data_dir: Path,
    handles: list[EmbeddedPostgres],
    start_child: Callable[[Path], subprocess.Popen[str]],
) -> None:
    child = start_child(data_dir)
    pgdata = data_dir / "pgdata"
    server_pid = _postmaster_pid(pgdata)
    assert server_pid is not None
    child.kill()
    child.wait(10)
    os.kill(server_pid, signal.SIGKILL)  # as after an OOM kill
    _wait_gone(server_pid, 10.0)  # as a supervisor would before restarting

    handle = _start(handles, data_dir)

    assert _postmaster_pid(pgdata) != server_pid
    assert _fetch_sync(handle.url, "SELECT note FROM marks") == [("before kill",)]


def test_stale_pid_file_naming_a_reused_pid(
    data_dir: Path, handles: list[EmbeddedPostgres]
) -> None:
    _start(handles, data_dir).stop()
    pgdata = data_dir / "pgdata"
    # After a crash and reboot (or container restart) the old postmaster pid may belong to an
    # unrelated process; PostgreSQL and pgserver would both take it for a live server.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        lines = [str(bystander.pid), str(pgdata), "0", "5432", str(pgdata), "", "0 0", "ready"]
        (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
        (pgdata / ".s.PGSQL.5432.lock").write_text(f"{bystander.pid}\n")

        handle = _start(handles, data_dir)

        assert _fetch_sync(handle.url, "SELECT 1") == [(1,)]
        handle.stop()
        assert bystander.poll() is None  # not mistaken for the server, so not killed
    finally:
        bystander.kill()
        bystander.wait()


def test_truncated_pid_file_of_a_dead_server(
    data_dir: Path, handles: list[EmbeddedPostgres]
) -> None:
    _start(handles, data_dir).stop()
    pgdata = data_dir / "pgdata"
    gone = subprocess.Popen(["true"])
    gone.wait()
    # A postmaster killed while starting leaves a postmaster.pid of fewer than 8 lines, which
    # pgserver cannot parse.
    (pgdata / "postmaster.pid").write_text(f"{gone.pid}\n{pgdata}\n")

    handle = _start(handles, data_dir)

    assert _fetch_sync(handle.url, "SELECT 1") == [(1,)]


def test_data_dir_with_a_space_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="JOBQUEUE_DATA_DIR"):
        start_embedded(tmp_path / "my data")
    assert not (tmp_path / "my data").exists()


def test_without_a_backend_asks_for_a_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "_BACKENDS", ("jobqueue_no_such_pg_package",))

    with pytest.raises(ConfigurationError, match="JOBQUEUE_DATABASE_URL"):
        start_embedded(tmp_path)


def _interpreter_for(user: str, env: dict[str, str]) -> str | None:
    """A Python of this version that ``user`` can run with our packages, or None."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for exe in (sys.executable, shutil.which(version, path=env["PATH"])):
        if exe is None:
            continue
        try:
            probe = subprocess.run(
                [exe, "-c", "import jobqueue.embedded, sqlalchemy.ext.asyncio"],
                user=user,
                env=env,
                capture_output=True,
                check=False,
                timeout=30,
            )
        except OSError:  # e.g. the interpreter sits in root's home
            continue
        if probe.returncode == 0:
            return exe
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_runs_as_an_unprivileged_user() -> None:
    user = "nobody"
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        pytest.skip(f"no {user!r} user")
    paths = sysconfig.get_paths()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join([str(SRC_DIR), paths["purelib"], paths["platlib"]]),
    }
    exe = _interpreter_for(user, env)
    if exe is None:
        pytest.skip(f"no Python {sys.version_info[:2]} that {user!r} can run with our packages")
    # tmp_path sits in root's private pytest directory; use a directory that user owns.
    base = Path(tempfile.mkdtemp(prefix="jobqueue-embedded-"))
    try:
        os.chown(base, entry.pw_uid, entry.pw_gid)
        base.chmod(0o755)
        script = textwrap.dedent(
            """
            import asyncio, sys
            from pathlib import Path
            from sqlalchemy import text
            from sqlalchemy.ext.asyncio import create_async_engine
            from jobqueue.embedded import start_embedded

            emb = start_embedded(Path(sys.argv[1]))

            async def main() -> None:
                engine = create_async_engine(emb.url)
                async with engine.connect() as conn:
                    print((await conn.execute(text("SELECT current_user, 1"))).one())
                await engine.dispose()

            asyncio.run(main())
            emb.stop()
            """
        )
        result = subprocess.run(
            [exe, "-c", script, str(base / "data")],
            user=user,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "('postgres', 1)" in result.stdout
        assert (base / "data" / "pgdata").stat().st_uid == entry.pw_uid
        assert _postmaster_pid(base / "data" / "pgdata") is None
    finally:
        _kill_leftover_server(base / "data" / "pgdata")
        shutil.rmtree(base, ignore_errors=True)
