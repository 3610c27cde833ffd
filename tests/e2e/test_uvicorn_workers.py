"""``uvicorn jobqueue.api.app:create_app --factory --workers 2``: each uvicorn worker process is
a whole jobqueue process (its own pool, LISTEN connection and registry row), so the jobs run
and the registry lists both (docs/deploy.md, "Several processes")."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
import httpx

from tests.e2e.procs import child_env, free_port
from tests.helpers import wait_until


async def test_uvicorn_two_workers_each_a_jobqueue_process(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    port = free_port()
    uvicorn = Path(sys.executable).with_name("uvicorn")
    command = [str(uvicorn), "jobqueue.api.app:create_app", "--factory", "--workers", "2"]
    proc = await asyncio.create_subprocess_exec(
        *command,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        cwd=tmp_path,
        env=child_env({"JOBQUEUE_DATABASE_URL": database_url}),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:

        async def both_announced() -> bool:
            rows: int = await db.fetchval("SELECT count(*) FROM processes")
            return rows == 2

        await wait_until(both_announced, timeout=30, what="two registry rows")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            created = await asyncio.gather(
                *(client.post("/jobs", json={"task": "echo"}) for _ in range(20))
            )
            assert {response.status_code for response in created} == {201}
            last = created[-1].json()["id"]
            done = await client.get(f"/jobs/{last}", params={"wait_seconds": "10"})
            assert done.json()["status"] == "done"
        pids = {row["pid"] for row in await db.fetch("SELECT pid FROM processes")}
        assert len(pids) == 2
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
