"""``jobqueue serve`` with no database URL: the embedded PostgreSQL keeps jobs across restarts."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]  # pgserver's dependency
import pytest

from tests.e2e.procs import CLEAN_SIGTERM_EXIT, ServerFactory
from tests.helpers import wait_for_status

# The first start runs initdb; a loaded machine may need a while.
READY_TIMEOUT_SECONDS = 90.0


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """``JOBQUEUE_DATA_DIR``; a PostgreSQL left running there (a failed test) is shut down.

    As root it lies outside pytest's base temp (see ``tests/db/test_embedded.py``: PostgreSQL runs
    as pgserver's system user, and a pytest session starting meanwhile would reset
    /tmp/pytest-of-root to 0700, locking that user out).
    """
    own = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="jobqueue-e2e-embedded-")) if own else tmp_path
    path = base / "data"
    yield path
    _stop_leftover(path)
    if own:
        shutil.rmtree(base, ignore_errors=True)


def _stop_leftover(path: Path) -> None:
    pid_file = path / "pgdata" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError, psutil.Error):
        pid = int(pid_file.read_text().splitlines()[0])
        postmaster = psutil.Process(pid)
        if str(path / "pgdata") in postmaster.cmdline():
            postmaster.send_signal(signal.SIGQUIT)  # immediate shutdown
            postmaster.wait(10)


@pytest.mark.timeout(240)
async def test_serve_without_database_url_keeps_done_job_across_restart(
    data_dir: Path, start_server: ServerFactory
) -> None:
    env = {"JOBQUEUE_DATA_DIR": str(data_dir), "JOBQUEUE_SHUTDOWN_GRACE_SECONDS": "2"}

    first = await start_server.start(env, ready_timeout=READY_TIMEOUT_SECONDS)
    async with httpx.AsyncClient(base_url=first.url) as client:
        created = (await client.post("/jobs", json={"payload": {"kept": True}})).json()
        done = await wait_for_status(client, created["id"], {"done"})
    assert await first.stop(signal.SIGTERM, timeout=30) == CLEAN_SIGTERM_EXIT
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()

    second = await start_server.start(env, ready_timeout=READY_TIMEOUT_SECONDS)
    async with httpx.AsyncClient(base_url=second.url) as client:
        again = await client.get(f"/jobs/{created['id']}")

    assert again.status_code == 200
    assert again.json() == done
    assert (done["status"], done["result"]) == ("done", {"echo": {"kept": True}})
    assert '"event": "embedded_postgres_started"' in second.log_path.read_text()
