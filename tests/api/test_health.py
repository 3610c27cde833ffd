"""/healthz and /readyz."""

from __future__ import annotations

import asyncpg
import httpx


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
