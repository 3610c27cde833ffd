"""Helpers for the dashboard's browser tests and screenshot script: a real uvicorn serving the
app in this process, Debian's chromium under Python Playwright, console-error capture, and
direct status writes to seed jobs in known states.

Playwright is imported lazily (inside functions) so that importing this module never fails
where it is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import uvicorn
from fastapi import FastAPI

from tests.e2e.procs import REPO_ROOT, free_port
from tests.helpers import other_process

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO_ROOT / "test-artifacts"

_SET_STATUS = """
UPDATE jobs
SET status = $2::text,
    attempts = CASE WHEN $2::text IN ('done', 'failed', 'in_progress') THEN 1 ELSE 0 END,
    worker_id = CASE WHEN $2::text IN ('done', 'failed', 'in_progress') THEN 'test-worker' END,
    started_at = CASE WHEN $2::text IN ('done', 'failed', 'in_progress') THEN now() END,
    finished_at = CASE WHEN $2::text IN ('done', 'failed', 'cancelled') THEN now() END,
    lease_expires_at = CASE WHEN $2::text = 'in_progress' THEN now() + interval '1 hour' END,
    error = CASE WHEN $2::text = 'failed' THEN 'RuntimeError: boom' END
WHERE id = ANY($1::bigint[])
"""


async def set_status(db: asyncpg.Connection, ids: Sequence[int], status: str) -> None:
    """Put jobs in ``status`` directly, with the attempt, times, worker and error it implies
    (``failed`` jobs get ``RuntimeError: boom``); bypasses the state machine on purpose."""
    await db.execute(_SET_STATUS, list(ids), status)


@contextlib.asynccontextmanager
async def serve(app: FastAPI, timeout: float = 30.0) -> AsyncIterator[str]:
    """Serve ``app`` with a real uvicorn on a free port of 127.0.0.1, in this event loop.

    Yields:
        the base URL, e.g. ``http://127.0.0.1:43210``, once the lifespan has started.
    """
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name=f"uvicorn-{port}")
    deadline = asyncio.get_running_loop().time() + timeout
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise AssertionError("uvicorn stopped before it started serving")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"uvicorn did not start within {timeout} s")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's chromium, headless, with nothing fetched from the network."""
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
    )


class PageErrors:
    """Collects what a page logs as an error: ``console.error`` (including failed loads and
    Content-Security-Policy violations) and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", self._page_error)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console.error: {message.text} ({message.location})")

    def _page_error(self, error: Any) -> None:
        self.messages.append(f"uncaught: {error}")


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as ``test-artifacts/<name>.png`` (not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def announce_finished(
    db: asyncpg.Connection, done: int, failed: int, minutes_ago: int = 0
) -> None:
    """A registry row of another (pretend) process that ended ``done`` and ``failed`` jobs in
    the minute ``minutes_ago`` minutes back: what the throughput chart adds up."""
    minute = int(time.time() // 60) - minutes_ago
    finished = {str(minute): [done, failed]}
    await other_process(db, worker_id=f"elsewhere:1:{minute}", finished=finished)
