"""The ``jobqueue`` command as a user runs it: migrate, --help, and the HTTP client commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from jobqueue.db.migrations import head_revision
from tests.conftest import url_for
from tests.e2e.procs import ServerFactory, run_cli
from tests.helpers import wait_for_status


async def test_cli_migrate_twice_on_empty_database_reaches_head_and_second_is_noop(
    empty_database_url: str, workdir: Path
) -> None:
    env = {"JOBQUEUE_DATABASE_URL": empty_database_url}
    dsn = url_for(make_url(empty_database_url).database or "", "postgresql")

    first = await run_cli("migrate", cwd=workdir, env=env)
    conn = await asyncpg.connect(dsn)
    try:
        revision_after_first = await conn.fetch("SELECT version_num FROM alembic_version")
        await conn.execute("INSERT INTO jobs (task) VALUES ('echo')")
        second = await run_cli("migrate", cwd=workdir, env=env)
        revision_after_second = await conn.fetch("SELECT version_num FROM alembic_version")
        job_ids = await conn.fetch("SELECT id FROM jobs")
    finally:
        await conn.close()

    assert (first.returncode, first.stdout) == (0, "database is at the newest revision\n")
    assert (second.returncode, second.stdout) == (0, "database is at the newest revision\n")
    assert [r["version_num"] for r in revision_after_first] == [head_revision()]
    assert [r["version_num"] for r in revision_after_second] == [head_revision()]
    assert [r["id"] for r in job_ids] == [1]
    assert "Running upgrade" in first.stderr
    assert "Running upgrade" not in second.stderr


async def test_cli_module_help_exits_0_and_lists_every_command(workdir: Path) -> None:
    result = await run_cli(sys.executable, "-m", "jobqueue", "--help", cwd=workdir)

    assert result.returncode == 0, result.stderr
    # The first word of each line: rich's boxed table ("│ serve  Run…") or click's plain list.
    first_words = {
        line.strip(" │").split()[0] for line in result.stdout.splitlines() if line.strip(" │")
    }
    assert {"serve", "migrate", "enqueue", "get", "list"} <= first_words


async def test_cli_enqueue_against_server_prints_created_job_json(
    database_url: str, start_server: ServerFactory, workdir: Path
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})

    result = await run_cli(
        "enqueue", "echo", "--payload", '{"a":1}', "--url", server.url, cwd=workdir
    )

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["id"] == 1
    assert (printed["task"], printed["payload"], printed["queue"], printed["status"]) == (
        "echo",
        {"a": 1},
        "default",
        "todo",
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        stored = await wait_for_status(client, 1, {"done"})
    assert (stored["task"], stored["payload"], stored["result"]) == (
        "echo",
        {"a": 1},
        {"echo": {"a": 1}},
    )


async def test_cli_get_against_server_prints_job_as_api_returns_it(
    database_url: str, start_server: ServerFactory, workdir: Path
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})
    async with httpx.AsyncClient(base_url=server.url) as client:
        created = (await client.post("/jobs", json={"payload": {"a": 1}})).json()
        done = await wait_for_status(client, created["id"], {"done"})

    result = await run_cli("get", str(created["id"]), "--url", server.url, cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == done
    assert done["result"] == {"echo": {"a": 1}}


async def test_cli_list_against_server_prints_one_line_per_job(
    database_url: str, start_server: ServerFactory, workdir: Path
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})
    async with httpx.AsyncClient(base_url=server.url) as client:
        ids = [(await client.post("/jobs", json={})).json()["id"] for _ in range(2)]
        for job_id in ids:
            await wait_for_status(client, job_id, {"done"})

    result = await run_cli("list", "--url", server.url, cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        [str(job_id), "done", "default", "echo", "attempts=1/3"] for job_id in reversed(ids)
    ]


async def test_cli_enqueue_non_object_payload_exits_2_with_message(workdir: Path) -> None:
    result = await run_cli(
        "enqueue", "echo", "--payload", "[1]", "--url", "http://127.0.0.1:1", cwd=workdir
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "error: --payload must be a JSON object, e.g. '{\"seconds\": 2}'\n"


async def test_cli_get_unreachable_url_exits_2_with_cannot_reach(workdir: Path) -> None:
    result = await run_cli("get", "1", "--url", "http://127.0.0.1:1", cwd=workdir)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot reach http://127.0.0.1:1/jobs/1: ")
    assert "is `jobqueue serve` running? see --url" in result.stderr


async def test_cli_job_feature_commands_against_server(
    database_url: str, start_server: ServerFactory, workdir: Path
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})
    url = ["--url", server.url]

    delayed = await run_cli(
        "enqueue", "echo", "--delay-seconds", "3600", "--idempotency-key", "k1", *url, cwd=workdir
    )
    again = await run_cli(
        "enqueue", "echo", "--delay-seconds", "3600", "--idempotency-key", "k1", *url, cwd=workdir
    )
    job = json.loads(delayed.stdout)
    assert json.loads(again.stdout)["id"] == job["id"]
    assert (job["status"], job["idempotency_key"]) == ("todo", "k1")

    cancelled = await run_cli("cancel", str(job["id"]), *url, cwd=workdir)
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    retried = await run_cli("retry", str(job["id"]), *url, cwd=workdir)
    assert (json.loads(retried.stdout)["status"], json.loads(retried.stdout)["attempts"]) == (
        "todo",
        0,
    )

    specs = workdir / "batch.json"
    specs.write_text(json.dumps([{"task": "echo", "payload": {"n": n}} for n in range(3)]))
    batch = await run_cli("enqueue-batch", str(specs), *url, cwd=workdir)
    assert batch.returncode == 0, batch.stderr
    batch_ids = [int(line) for line in batch.stdout.split()]
    assert len(batch_ids) == 3

    waited = await run_cli("get", str(batch_ids[-1]), "--wait", "10", *url, cwd=workdir)
    assert (json.loads(waited.stdout)["status"], json.loads(waited.stdout)["result"]) == (
        "done",
        {"echo": {"n": 2}},
    )

    failing = await run_cli(
        "enqueue", "fail", "--payload", '{"message": "boom"}', "--max-attempts", "1", *url,
        cwd=workdir,
    )  # fmt: skip
    failing_id = str(json.loads(failing.stdout)["id"])
    await run_cli("get", failing_id, "--wait", "10", *url, cwd=workdir)
    attempts = await run_cli("attempts", failing_id, *url, cwd=workdir)
    assert attempts.returncode == 0, attempts.stderr
    (line,) = attempts.stdout.splitlines()
    assert line.split()[:2] == ["1", "failed"]
    assert line.endswith("RuntimeError: boom")

    conflict = await run_cli("cancel", str(batch_ids[-1]), *url, cwd=workdir)
    assert conflict.returncode == 2
    assert "409" in conflict.stderr
    assert "only todo or in_progress jobs can be cancelled" in conflict.stderr
