"""Fixtures for the end-to-end tests: real ``jobqueue serve`` processes and empty databases.

``start_server(env)`` starts a server on a free port in ``tmp_path`` and returns once
``/readyz`` answers 200; every server a test started is stopped at teardown, and when the test
fails the end of each server's log is added to the report.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import ADMIN_URL, url_for
from tests.e2e.procs import TASK_MODULE, ServerFactory

_empty_counter = itertools.count()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    factory: ServerFactory | None = getattr(item, "_e2e_factory", None)
    if report.failed and factory is not None:
        for server in factory.servers:
            report.sections.append((f"{server.name} log (tail)", server.tail()))
    return report


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    """The file the ``record`` task appends ``"job_id attempt"`` lines to."""
    return tmp_path / "record.txt"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The children's working directory: empty, so no ``.env`` is read."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.fixture
def start_server(
    request: pytest.FixtureRequest, workdir: Path, record_file: Path
) -> Iterator[ServerFactory]:
    """A factory: ``await start_server.start({"JOBQUEUE_…": …})`` → a ready :class:`Server`.

    Defaults: JSON logs, the e2e task module, a 0.2 s poll. Leftover servers are stopped at
    teardown (SIGTERM, then SIGKILL after 5 s); request ``database_url``/``db`` before this
    fixture so that the database outlives them.
    """
    factory = ServerFactory(
        workdir,
        {
            "JOBQUEUE_LOG_FORMAT": "json",
            "JOBQUEUE_TASK_MODULES": TASK_MODULE,
            "JOBQUEUE_POLL_INTERVAL_SECONDS": "0.2",
            "E2E_RECORD_FILE": str(record_file),
        },
    )
    request.node._e2e_factory = factory
    yield factory
    for server in factory.servers:
        server.terminate()


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def empty_database_url() -> AsyncIterator[str]:
    """A fresh database with no schema at all (SQLAlchemy asyncpg URL); dropped afterwards."""
    name = f"jqt_e2e_{os.getpid()}_empty_{next(_empty_counter)}"
    await _admin(f'CREATE DATABASE "{name}"')
    yield url_for(name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
