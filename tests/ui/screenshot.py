"""Make ``docs/dashboard.png``: the real dashboard, served by a real uvicorn with workers on a
real PostgreSQL, photographed by Debian's chromium.

    .venv/bin/python -m tests.ui.screenshot [OUTPUT]     # default docs/dashboard.png

It creates a scratch database on ``JOBQUEUE_TEST_ADMIN_URL`` (as the tests do), migrates it,
starts the app with queues ``default`` (8 slots) and ``emails`` (2), and runs real jobs: echo
jobs that finish, ``fail`` jobs that fail, ``sleep`` jobs that are running when the picture is
taken, delayed jobs still ``todo``, and cancelled ones. So that the charts show the shape of an
hour rather than one bar, the finish times of the finished jobs are then spread over the last
hour with one UPDATE (the only thing written behind the service's back). The database is
dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx

from jobqueue.api.app import create_app
from jobqueue.db.migrations import upgrade_to_head
from jobqueue.settings import Settings
from tests.conftest import ADMIN_URL, url_for
from tests.e2e.procs import REPO_ROOT
from tests.helpers import wait_until
from tests.ui.support import launch_chromium, serve

if TYPE_CHECKING:
    from playwright.async_api import ViewportSize

DEFAULT_OUTPUT = REPO_ROOT / "docs" / "dashboard.png"
VIEWPORT: ViewportSize = {"width": 1280, "height": 860}

# Spread each finished job over the last hour: more recent minutes busier, a failure here and
# there (the fail jobs), so both charts have something to show.
_SPREAD = """
WITH ranked AS (
    -- md5 shuffles the jobs, so failures fall anywhere in the hour
    SELECT id, (row_number() OVER (ORDER BY md5(id::text)) - 1)::float8 / count(*) OVER () AS r
    FROM jobs WHERE status IN ('done', 'failed')
), f AS (
    SELECT id, 3540 * power(r, 1.6) + 20 * random() AS seconds_ago FROM ranked
)
UPDATE jobs AS j
SET finished_at = now() - make_interval(secs => f.seconds_ago),
    started_at = now() - make_interval(secs => f.seconds_ago + 0.05),
    created_at = now() - make_interval(secs => f.seconds_ago + 0.1),
    run_at = now() - make_interval(secs => f.seconds_ago + 0.1)
FROM f
WHERE j.id = f.id
"""


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _post(client: httpx.AsyncClient, count: int, **spec: object) -> list[int]:
    response = await client.post("/jobs/batch", json={"jobs": [spec] * count})
    response.raise_for_status()
    ids: list[int] = response.json()["ids"]
    return ids


async def _seed(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await _post(client, 90, task="echo", payload={"n": 1}, description="render thumbnail")
    await _post(client, 30, task="echo", queue="emails", description="send welcome email")
    await _post(client, 7, task="fail", payload={"message": "SMTP 451"}, max_attempts=1)

    async def settled() -> bool:
        query = "SELECT count(*) FROM jobs WHERE status NOT IN ('done', 'failed')"
        return bool(await db.fetchval(query) == 0)

    await wait_until(settled, timeout=60, what="the first jobs to finish")
    await db.execute(_SPREAD)
    await _post(client, 3, task="sleep", payload={"seconds": 120}, description="nightly export")
    await _post(client, 1, task="sleep", queue="emails", payload={"seconds": 120})
    await _post(client, 12, task="echo", delay_seconds=3600, description="reminder")
    await _post(client, 4, task="echo", queue="emails", delay_seconds=1800)
    for job_id in await _post(client, 2, task="echo", delay_seconds=3600):
        (await client.post(f"/jobs/{job_id}/cancel")).raise_for_status()

    async def running() -> bool:
        busy = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'in_progress'")
        return bool(busy == 4)

    await wait_until(running, timeout=30, what="the sleep jobs to start")


async def make_screenshot(output: Path) -> None:
    """Seed a scratch database with real jobs and save the overview page to ``output``."""
    from playwright.async_api import async_playwright

    name = f"jq_screenshot_{os.getpid()}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(upgrade_to_head, url_for(name))
        settings = Settings(
            _env_file=None,
            database_url=url_for(name),
            auto_migrate=False,
            queues="default=8,emails=2",
            shutdown_grace_seconds=0.2,
            log_format="json",
        )
        db = await asyncpg.connect(url_for(name, "postgresql"))
        try:
            async with serve(create_app(settings)) as url:
                async with httpx.AsyncClient(base_url=url) as client:
                    await _seed(client, db)
                playwright = await async_playwright().start()
                try:
                    browser = await launch_chromium(playwright)
                    page = await browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
                    await page.goto(f"{url}/ui")
                    await page.wait_for_selector("#throughput-chart svg rect.bar-done")
                    output.parent.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(path=str(output), full_page=False)
                    await browser.close()
                finally:
                    await playwright.stop()
        finally:
            await db.close()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    """Entry point: ``python -m tests.ui.screenshot [OUTPUT]``."""
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    asyncio.run(make_screenshot(output))
    print(f"saved {output}")


if __name__ == "__main__":
    main()
