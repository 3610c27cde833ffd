"""Recovery of what a killed process left in an embedded cluster directory (see the package
docstring, "Crashes"). Blocking: call from a thread."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import structlog

log = structlog.get_logger("jobqueue.embedded")

ORPHAN_WAIT_SECONDS = 5.0
"""How long old backends of a crashed postmaster get to exit before a new one starts, s."""
# Lines of a complete postmaster.pid (src/include/utils/pidfile.h, PostgreSQL 10 and later).
_PID_FILE_LINES = 8


def recover_stale_state(pgdata: Path) -> None:
    """Undo what a killed process left in ``pgdata``; call holding pgserver's file lock.

    * A live server of this cluster: drop dead pids from ``.handle_pids.json`` so that the last
      live holder stops the server.
    * No live server: empty ``.handle_pids.json`` (nobody can hold a server that is not running),
      give old backends of a crashed postmaster time to exit, and remove a ``postmaster.pid``
      (and the socket's ``.lock``) whose pid now belongs to another process, or that is
      incomplete. A complete ``postmaster.pid`` naming a dead pid is left to PostgreSQL, which
      replaces it itself and uses its shared memory key to check that no old backend is still
      attached.

    ``postmaster.pid`` lines (src/include/utils/pidfile.h): 1 pid, 2 data directory, 3 start
    time, 4 port, 5 socket directory, 6 listen address, 7 shared memory key, 8 status.
    """
    pid_file = pgdata / "postmaster.pid"
    handles_file = pgdata / ".handle_pids.json"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        lines = None
    except OSError:
        return  # unreadable (another user's cluster): let pgserver report it

    if lines is not None:
        state = _postmaster_state(lines, pgdata)
        if state == "running":
            _write_handles(handles_file, [p for p in _read_handles(handles_file) if _alive(p)])
            return
        _wait_for_orphans(pgdata, ORPHAN_WAIT_SECONDS)
        # pgserver cannot parse a file cut short by a crash during start-up (it wants 8 lines).
        if state == "foreign" or len(lines) != _PID_FILE_LINES:
            log.warning("embedded_postgres_stale_pid_file", path=str(pid_file), state=state)
            if len(lines) >= 5 and lines[3].strip() and lines[4].strip():
                socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
                socket_lock.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)
    if handles_file.exists():
        _write_handles(handles_file, [])


def _postmaster_state(lines: list[str], pgdata: Path) -> str:
    """Classify the pid of ``postmaster.pid``.

    Returns:
        ``"running"``: a process whose command line names this cluster (or one we may not
        inspect: we then assume it is ours rather than risk two servers on one cluster);
        ``"dead"``: no such process; ``"foreign"``: a zombie, another program, or an
        unparsable file.
    """
    import psutil  # type: ignore[import-untyped,unused-ignore]  # a dependency of pgserver

    try:
        # A negative pid marks a standalone backend (initdb, single-user mode), as in PostgreSQL.
        pid = abs(int(lines[0].strip()))
    except (IndexError, ValueError):
        return "foreign"
    if pid in (0, os.getpid()):
        return "foreign"
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.ZombieProcess:
        return "foreign"
    except psutil.NoSuchProcess:
        return "dead"
    except psutil.AccessDenied:
        return "running"
    return "running" if str(pgdata) in cmdline else "foreign"


def _wait_for_orphans(pgdata: Path, timeout_seconds: float) -> None:
    """Wait until no process has ``pgdata`` as working directory, at most ``timeout_seconds``.

    PostgreSQL backends ``chdir`` into the cluster directory and exit soon after their
    postmaster dies; a new postmaster refuses to start while they still hold shared memory.
    """
    import psutil  # type: ignore[import-untyped,unused-ignore]  # a dependency of pgserver

    deadline = time.monotonic() + timeout_seconds
    while True:
        leftovers = [
            proc
            for proc in psutil.process_iter(["cwd"])
            if proc.info.get("cwd") == str(pgdata) and proc.pid != os.getpid()
        ]
        if not leftovers or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (a reused pid counts as alive)."""
    import psutil  # type: ignore[import-untyped,unused-ignore]  # a dependency of pgserver

    return bool(psutil.pid_exists(pid))


def _read_handles(path: Path) -> list[int]:
    """The pids in pgserver's ``.handle_pids.json`` (a JSON list of ints); [] if unreadable."""
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, int)]


def _write_handles(path: Path, pids: list[int]) -> None:
    """Rewrite pgserver's ``.handle_pids.json`` when its content differs from ``pids``."""
    if path.exists() and _read_handles(path) != pids:
        path.write_text(json.dumps(pids))
