"""``serve`` migrates an empty database from outside the repository: migrations ship with it."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from jobqueue.db.migrations import head_revision
from tests.conftest import url_for
from tests.e2e.procs import REPO_ROOT, ServerFactory
from tests.helpers import wait_for_status


async def test_serve_outside_repo_on_empty_database_migrates_and_runs_jobs(
    empty_database_url: str, start_server: ServerFactory, workdir: Path
) -> None:
    assert REPO_ROOT not in (workdir, *workdir.parents)

    server = await start_server.start(
        {"JOBQUEUE_DATABASE_URL": empty_database_url, "JOBQUEUE_AUTO_MIGRATE": "true"}
    )

    conn = await asyncpg.connect(url_for(make_url(empty_database_url).database or "", "postgresql"))
    try:
        revisions = [r["version_num"] for r in await conn.fetch("SELECT * FROM alembic_version")]
    finally:
        await conn.close()
    assert revisions == [head_revision()]
    async with httpx.AsyncClient(base_url=server.url) as client:
        ready = await client.get("/readyz")
        job = (await client.post("/jobs", json={"payload": {"n": 7}})).json()
        done = await wait_for_status(client, job["id"], {"done"})
    assert ready.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "listen": "ok",
        "loops": "ok",
    }
    assert done["result"] == {"echo": {"n": 7}}
