"""The ``jobqueue`` command as a user runs it: migrate, --help, and the HTTP client commands."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from jobqueue.db.migrations import head_revision
from tests.conftest import ADMIN_URL, url_for
from tests.e2e.procs import ServerFactory, free_port, run_cli
from tests.helpers import wait_for_status, wait_until


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


PASSWORD = "pw-Zq8s3cret"  # trust authentication: PostgreSQL never asks for it
_missing = itertools.count()

# Each database command, as a user runs it: migrate; serve migrating at start (the default);
# serve without the start-up migration, whose first database work is the pool's.
DATABASE_COMMANDS = [
    pytest.param(["migrate"], {}, id="migrate"),
    pytest.param(["serve", "--port"], {}, id="serve"),
    pytest.param(["serve", "--port"], {"JOBQUEUE_AUTO_MIGRATE": "false"}, id="serve-no-migrate"),
]


def command_line(words: list[str]) -> list[str]:
    """``words``, with a free port after a trailing ``--port``."""
    return [*words, str(free_port())] if words[-1] == "--port" else words


async def database_exists(name: str) -> bool:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


@pytest.mark.parametrize(("words", "env"), DATABASE_COMMANDS)
async def test_cli_database_command_missing_database_exits_1_with_createdb_hint(
    workdir: Path, words: list[str], env: dict[str, str]
) -> None:
    name = f"jqt_e2e_{os.getpid()}_missing_{next(_missing)}"
    url = make_url(ADMIN_URL).set(drivername="postgresql", password=PASSWORD, database=name)
    database_url = url.render_as_string(hide_password=False)
    host, port, user = url.host or "localhost", url.port or 5432, url.username or ""
    flags = " ".join(
        [*(["-h", url.host] if url.host else []), *(["-p", str(url.port)] if url.port else [])]
        + (["-U", user] if user else [])
    )

    result = await run_cli(
        *command_line(words), cwd=workdir, env={"JOBQUEUE_DATABASE_URL": database_url, **env}
    )

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f'error: database "{name}" does not exist on {host}:{port}: create it with createdb '
        f"{flags} {name}, or fix the name in JOBQUEUE_DATABASE_URL\n"
    )
    assert PASSWORD not in result.stderr
    assert not await database_exists(name)


@pytest.mark.parametrize(("words", "env"), DATABASE_COMMANDS)
async def test_cli_database_command_nothing_listening_exits_1_asking_whether_postgres_runs(
    workdir: Path, words: list[str], env: dict[str, str]
) -> None:
    port = free_port()  # nothing listens there: the connection is refused at once
    database_url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/jobs"

    result = await run_cli(
        *command_line(words), cwd=workdir, env={"JOBQUEUE_DATABASE_URL": database_url, **env}
    )

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: could not connect to 127.0.0.1:{port}: connection refused: is PostgreSQL "
        "running and listening on that port? (JOBQUEUE_DATABASE_URL)\n"
    )
    assert PASSWORD not in result.stderr


async def test_cli_migrate_unknown_variable_warns_naming_the_likely_one_and_still_migrates(
    empty_database_url: str, workdir: Path
) -> None:
    (workdir / ".env").write_text("JOBQUEUE_LEASE_SECOND=10\n")
    env = {
        "JOBQUEUE_DATABASE_URL": empty_database_url,
        "JOBQUEUE_LOG_FORMAT": "json",
        "JOBQUEUE_CONCURENCY": "4",
        # Read outside the settings (the CLI's client options, the tests): never warned about.
        "JOBQUEUE_URL": "http://127.0.0.1:1",
        "JOBQUEUE_CLIENT_KEY": "k",
        "JOBQUEUE_TEST_ADMIN_URL": ADMIN_URL,
    }

    result = await run_cli("migrate", cwd=workdir, env=env)

    assert (result.returncode, result.stdout) == (0, "database is at the newest revision\n")
    warnings = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if line.startswith("{") and '"setting_unknown"' in line
    ]
    assert [(w["level"], w["variable"], w["did_you_mean"], w["detail"]) for w in warnings] == [
        (
            "warning",
            "JOBQUEUE_CONCURENCY",
            "JOBQUEUE_CONCURRENCY",
            "JOBQUEUE_CONCURENCY is not a jobqueue setting and is ignored: did you mean "
            "JOBQUEUE_CONCURRENCY? (.env.example lists every setting)",
        ),
        (
            "warning",
            "JOBQUEUE_LEASE_SECOND",
            "JOBQUEUE_LEASE_SECONDS",
            "JOBQUEUE_LEASE_SECOND is not a jobqueue setting and is ignored: did you mean "
            "JOBQUEUE_LEASE_SECONDS? (.env.example lists every setting)",
        ),
    ]


async def test_cli_invalid_setting_exits_2_naming_the_variable_and_what_to_set(
    workdir: Path,
) -> None:
    result = await run_cli(
        "migrate",
        cwd=workdir,
        env={"JOBQUEUE_LEASE_SECONDS": "0.05", "JOBQUEUE_MAX_PAYLOAD_DEPTH": "900"},
    )

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "error: invalid setting: JOBQUEUE_LEASE_SECONDS must be at least 1 s, got 0.05: the "
        "heartbeat renews a lease every third of it, and a shorter lease is lost to ordinary "
        "database delays (every job would run again); set JOBQUEUE_LEASE_SECONDS=1 or more "
        "(default 30)",
        "error: invalid setting: JOBQUEUE_MAX_PAYLOAD_DEPTH must be 1 to 200, got 900: JSON "
        "nested deeper than about 255 levels cannot be serialised, so such a job could be "
        "stored but never read back; set JOBQUEUE_MAX_PAYLOAD_DEPTH=200 or less (default 64)",
    ]


async def test_cli_client_command_service_database_down_exits_1_with_one_line(
    database_url: str, start_server: ServerFactory, workdir: Path
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_WORKERS_ENABLED": "false",
            "JOBQUEUE_DB_POOL_TIMEOUT_SECONDS": "2",
        }
    )
    name = make_url(database_url).database
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        # The database refuses new connections and the service's open ones are ended.
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            name,
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

            async def not_ready() -> bool:
                return (await client.get("/readyz")).status_code == 503

            await wait_until(not_ready, 15, "/readyz 503 with the database away")
        listed = await run_cli("list", "--url", server.url, cwd=workdir)
        got = await run_cli("get", "1", "--url", server.url, cwd=workdir)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    for result, path in ((listed, "/jobs"), (got, "/jobs/1")):
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"error: 503 from {server.url}{path}: the database is not reachable; retry (the "
            "service runs but cannot serve this now, e.g. its database is down: its /readyz "
            "says which check fails; retry later)\n"
        )


async def test_cli_serve_bad_schedules_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = '[{"name": "x", "cron": "* * *", "task": "echo"}]'
    result = await run_cli(
        "serve",
        cwd=tmp_path,
        env={
            "JOBQUEUE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "JOBQUEUE_SCHEDULES": bad,
        },
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: JOBQUEUE_SCHEDULES: schedule 'x': cron '* * *' must have five fields (minute "
        "hour day-of-month month day-of-week), e.g. '*/5 * * * *', or be one of @yearly, "
        "@annually, @monthly, @weekly, @daily, @midnight, @hourly"
    ]
