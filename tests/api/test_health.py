"""/healthz and /readyz."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
import structlog

from jobqueue.notify.listener import NOT_RECEIVING_HINT
from tests.conftest import AppClient
from tests.helpers import deafen, wait_until


async def test_healthz_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.json() == {"status": "ok", "checks": {}}


async def test_readyz_database_and_migrations_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "listen": "ok", "loops": "ok"},
    }


async def test_readyz_schema_behind_is_503(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE alembic_version SET version_num = 'old'")
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"].startswith("at old, expected ")


async def test_readyz_listen_not_receiving_is_503_with_fixed_words_and_logged(
    client: AppClient, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = client.runtime.listener
    assert listener is not None
    with structlog.testing.capture_logs() as logs:
        await deafen(listener, db, monkeypatch, ping_timeout_seconds=0.3)

        async def not_receiving() -> bool:
            return not listener.receiving

        await wait_until(not_receiving, 10, "a ping unanswered")
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            "database": "ok",
            "migrations": "ok",
            "listen": "not receiving",
            "loops": "ok",
        },
    }
    assert [
        (entry["log_level"], entry["detail"])
        for entry in logs
        if entry["event"] == "listen_not_receiving"
    ] == [("error", NOT_RECEIVING_HINT)]


async def test_readyz_listen_hearing_again_is_200(
    client: AppClient, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = client.runtime.listener
    assert listener is not None
    await deafen(listener, db, monkeypatch, ping_timeout_seconds=0.3)

    async def listen_check_is(value: str) -> bool:
        response = await client.get("/readyz")
        return bool(response.json()["checks"]["listen"] == value)

    await wait_until(lambda: listen_check_is("not receiving"), 10, "listen: not receiving")
    monkeypatch.undo()
    await wait_until(lambda: listen_check_is("ok"), 10, "listen: ok again")
    response = await client.get("/readyz")
    assert (response.status_code, response.json()["status"]) == (200, "ok")
