"""``jobqueue serve`` and access: loopback only without keys, refused elsewhere unless
JOBQUEUE_INSECURE=true, and a start-up log that says so and never holds a secret."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.e2e.procs import (
    JOBQUEUE,
    Server,
    ServerFactory,
    _wait_ready,
    child_env,
    free_port,
    run_cli,
)

ADMIN_KEY = "FD6Ra0ewZU3MJibrJlUGK66JkGrlFuvSKRIDvHnBTjE"
SESSION_SECRET = "e2e-session-secret-0123456789-abcdefgh"
SIGNING_SECRET = "whsec_ZTJlLXNpZ25pbmctc2VjcmV0LXZhbHVl"


def events(server: Server) -> list[dict[str, object]]:
    lines = server.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_serve_without_keys_on_wildcard_exits_2_saying_what_to_set(workdir: Path) -> None:
    result = await run_cli(
        "serve",
        cwd=workdir,
        env={"JOBQUEUE_HOST": "0.0.0.0", "JOBQUEUE_PORT": str(free_port())},
        timeout=30,
    )
    assert result.returncode == 2, result
    assert "refusing to listen on '0.0.0.0' without API keys" in result.stderr
    assert "JOBQUEUE_API_KEYS" in result.stderr
    assert "JOBQUEUE_INSECURE=true" in result.stderr


def spawn_on_wildcard(workdir: Path, env: dict[str, str]) -> Server:
    """``jobqueue serve --host 0.0.0.0`` on a free port (reached on 127.0.0.1)."""
    port = free_port()
    log_path = workdir / "wildcard.log"
    log_file = log_path.open("ab")
    proc = subprocess.Popen(
        [*JOBQUEUE, "serve", "--host", "0.0.0.0", "--port", str(port)],
        cwd=workdir,
        env=child_env({"JOBQUEUE_LOG_FORMAT": "json", **env}),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    return Server("wildcard", f"http://127.0.0.1:{port}", proc, log_path, log_file)


async def test_serve_insecure_on_wildcard_starts_and_warns(
    database_url: str, workdir: Path
) -> None:
    server = spawn_on_wildcard(
        workdir, {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_INSECURE": "true"}
    )
    try:
        assert await _wait_ready(server, 30), server.tail()
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.post("/jobs", json={"task": "echo"})).status_code == 201
    finally:
        server.terminate()
    (warning,) = [e for e in events(server) if e["event"] == "access_insecure"]
    assert (warning["level"], warning["host"]) == ("warning", "0.0.0.0")


async def test_serve_without_keys_logs_loopback_only(
    database_url: str, start_server: ServerFactory
) -> None:
    server = await start_server.start({"JOBQUEUE_DATABASE_URL": database_url})
    await server.stop()
    (event,) = [e for e in events(server) if e["event"] == "access_open"]
    assert event["host"] == "127.0.0.1"
    assert "loopback only" in str(event["detail"])


async def test_serve_with_keys_logs_names_and_never_a_secret(
    database_url: str, start_server: ServerFactory
) -> None:
    keys = json.dumps([{"name": "ops", "role": "admin", "key": ADMIN_KEY}])
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_API_KEYS": keys,
            "JOBQUEUE_SESSION_SECRET": SESSION_SECRET,
            "JOBQUEUE_HTTP_SIGNING_SECRET": SIGNING_SECRET,
            "JOBQUEUE_LOG_LEVEL": "debug",
        }
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/jobs")).status_code == 401
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert (await client.get("/jobs", headers=headers)).status_code == 200
        login = await client.post("/ui/login", data={"key": ADMIN_KEY})
        assert login.status_code == 303
        failed = await client.post("/ui/login", data={"key": ADMIN_KEY + "-wrong"})
        assert failed.status_code == 401
    await server.stop()
    (event,) = [e for e in events(server) if e["event"] == "access_keys"]
    assert event["keys"] == ["ops:admin"]
    assert [e["key_name"] for e in events(server) if e["event"] == "login"] == ["ops"]
    text = server.log_path.read_text()
    for secret in (ADMIN_KEY, SESSION_SECRET, SIGNING_SECRET, SIGNING_SECRET[6:]):
        assert secret not in text


async def test_cli_client_sends_key_from_option_or_environment(
    database_url: str, start_server: ServerFactory, workdir: Path
) -> None:
    keys = json.dumps([{"name": "ops", "role": "admin", "key": ADMIN_KEY}])
    server = await start_server.start(
        {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_API_KEYS": keys}
    )
    refused = await run_cli("list", "--url", server.url, cwd=workdir)
    assert refused.returncode == 2
    assert "--key or JOBQUEUE_CLIENT_KEY" in refused.stderr
    created = await run_cli("enqueue", "echo", "--url", server.url, "--key", ADMIN_KEY, cwd=workdir)
    assert created.returncode == 0, created.stderr
    listed = await run_cli(
        "list", "--url", server.url, cwd=workdir, env={"JOBQUEUE_CLIENT_KEY": ADMIN_KEY}
    )
    assert listed.returncode == 0, listed.stderr
    assert f"{json.loads(created.stdout)['id']:>8}" in listed.stdout
