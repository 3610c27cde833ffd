"""Shared fixtures: a real PostgreSQL, one migrated template per run, a fresh clone per test.

The server is ``JOBQUEUE_TEST_ADMIN_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
A run creates ``jqt_<pid>_template``, migrates it with alembic, and clones it for each test
(``CREATE DATABASE … TEMPLATE``, a file copy, tens of milliseconds); everything it created is
dropped at the end. Tests that cross connections (SKIP LOCKED, NOTIFY, several pools) need
real databases, so every test gets one: no savepoint tricks to reason about.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from jobqueue.api.app import create_app
from jobqueue.api.state import Runtime, state_of
from jobqueue.db.migrations import upgrade_to_head
from jobqueue.errors import Discard, RetryLater
from jobqueue.settings import Settings
from jobqueue.tasks.registry import JobContext, TaskRegistry, default_registry
from jobqueue.worker import WorkerPool

ADMIN_URL = os.environ.get(
    "JOBQUEUE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PREFIX = f"jqt_{os.getpid()}"
_counter = itertools.count()


_TIERS = {
    "unit": "unit",
    "db": "db",
    "api": "api",
    "worker": "worker",
    "e2e": "e2e",
    "ui": "browser",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier, from its folder (``tests/<folder>/...``); the client's
    tests (``tests/client/<tier>/...``) with ``client`` and their tier."""
    for item in items:
        parts = item.path.relative_to(Path(__file__).parent).parts
        if parts[0] == "client" and len(parts) > 2:
            item.add_marker(pytest.mark.client)
            parts = parts[1:]
        tier = _TIERS.get(parts[0]) if len(parts) > 1 else None
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))


def url_for(database: str, driver: str = "postgresql+asyncpg") -> str:
    """A URL to ``database`` on the test server."""
    return (
        make_url(ADMIN_URL)
        .set(drivername=driver, database=database)
        .render_as_string(hide_password=False)
    )


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated to head, used only as a template."""
    name = f"{PREFIX}_template"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
    upgrade_to_head(url_for(name))
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database_url(template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test; dropped afterwards. SQLAlchemy asyncpg URL."""
    name = f"{PREFIX}_{next(_counter)}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield url_for(name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the test database, for asserting on rows."""
    conn = await asyncpg.connect(url_for(make_url(database_url).database or "", "postgresql"))
    yield conn
    await conn.close()


class Runs:
    """Counts how often each job ran, for tasks registered by :func:`registry`."""

    def __init__(self) -> None:
        self.by_job: dict[int, int] = {}
        self.order: list[int] = []
        self.changed = asyncio.Event()

    def record(self, ctx: JobContext) -> None:
        self.by_job[ctx.job_id] = self.by_job.get(ctx.job_id, 0) + 1
        self.order.append(ctx.job_id)
        self.changed.set()


@pytest.fixture
def runs() -> Runs:
    return Runs()


@pytest.fixture
def registry(runs: Runs) -> TaskRegistry:
    """The built-in tasks plus test tasks that record each run in ``runs``: ``count`` (returns
    the payload), ``count_sync`` (same, a plain function), ``block`` (waits
    ``payload.seconds``), ``sleep_sync`` (a plain function sleeping), ``flaky``,
    ``retry_later``, ``discard``, ``fails_first_run``."""
    tasks = default_registry.copy()

    async def count(ctx: JobContext) -> dict[str, Any]:
        runs.record(ctx)
        return ctx.payload

    def count_sync(ctx: JobContext) -> dict[str, Any]:
        runs.record(ctx)
        return ctx.payload

    async def block(ctx: JobContext) -> str:
        runs.record(ctx)
        await asyncio.sleep(float(ctx.payload.get("seconds", 60)))
        return "finished"

    def sleep_sync(ctx: JobContext) -> str:
        runs.record(ctx)
        time.sleep(float(ctx.payload.get("seconds", 1)))
        return "late"

    async def flaky(ctx: JobContext) -> dict[str, int]:
        """Fails its first ``payload.fail_times`` attempts, then returns the attempt."""
        runs.record(ctx)
        if ctx.attempt <= int(ctx.payload.get("fail_times", 1)):
            raise ValueError(f"flaky failure {ctx.attempt}")
        return {"attempt": ctx.attempt}

    async def fails_first_run(ctx: JobContext) -> str:
        """Fails the first time it runs for a job (whatever the attempt number), then succeeds."""
        runs.record(ctx)
        if runs.by_job[ctx.job_id] == 1:
            raise ValueError("first run fails")
        return "second run"

    async def retry_later(ctx: JobContext) -> str:
        """Asks for a retry after ``payload.seconds`` on attempt 1; succeeds after."""
        runs.record(ctx)
        if ctx.attempt == 1:
            raise RetryLater(float(ctx.payload.get("seconds", 0.3)), "come back later")
        return "ok"

    async def discard(ctx: JobContext) -> None:
        runs.record(ctx)
        raise Discard("not worth retrying")

    tasks.register("count", count)
    tasks.register("count_sync", count_sync)
    tasks.register("block", block)
    tasks.register("sleep_sync", sleep_sync)
    tasks.register("flaky", flaky)
    tasks.register("retry_later", retry_later)
    tasks.register("discard", discard)
    tasks.register("fails_first_run", fails_first_run)
    return tasks


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Settings for the test database; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "auto_migrate": False,
            "poll_interval_seconds": 0.2,
            "backoff_base_seconds": 0.0,
            "rescue_interval_seconds": 0.2,
            "shutdown_grace_seconds": 0.2,
            "log_format": "json",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


class AppClient(httpx.AsyncClient):
    """An httpx client of one in-process app, with the app's runtime at hand."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app), base_url="http://localhost")
        self.app = app

    @property
    def runtime(self) -> Runtime:
        """The running app's runtime (service, loops, pool)."""
        runtime = state_of(self.app).runtime
        assert runtime is not None, "the app is not running"
        return runtime

    @property
    def pool(self) -> WorkerPool:
        """The app's worker pool."""
        pool = self.runtime.pool
        assert pool is not None, "the app runs no worker pool"
        return pool


AppFactory = Callable[..., Awaitable[AppClient]]


@pytest.fixture
async def start_app(
    make_settings: Callable[..., Settings], registry: TaskRegistry
) -> AsyncIterator[AppFactory]:
    """Start an app (lifespan and worker pool) and return an httpx client for it.

    Several apps may be started in one test; each is shut down at the end.
    """
    stack: list[tuple[Any, AppClient]] = []

    async def start(**overrides: Any) -> AppClient:
        app = create_app(make_settings(**overrides), registry=registry)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = AppClient(app)
        stack.append((lifespan, client))
        return client

    yield start
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def client(start_app: AppFactory) -> AppClient:
    """One app with a worker pool of 10."""
    return await start_app()
