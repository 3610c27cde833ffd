"""With the database unreachable, the API answers 503 quickly, never 500 or a hang."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from jobqueue.api.app import create_app
from jobqueue.settings import Settings


@pytest.fixture
async def down_client() -> AsyncIterator[httpx.AsyncClient]:
    # Port 1 on loopback: nothing listens, connections are refused at once.
    settings = Settings(
        _env_file=None,
        database_url="postgresql://postgres@127.0.0.1:1/none",
        auto_migrate=False,
        workers_enabled=False,
        db_pool_timeout_seconds=1,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as client,
    ):
        yield client


async def test_create_job_database_down_is_503_with_retry_after(
    down_client: httpx.AsyncClient,
) -> None:
    response = await down_client.post("/jobs", json={})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    # a fixed sentence: the driver's words ("Connect call failed ('127.0.0.1', 1)") are logged
    assert response.json() == {"detail": "the database is not reachable; retry"}


async def test_readyz_database_down_is_503(down_client: httpx.AsyncClient) -> None:
    response = await down_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unavailable"


async def test_healthz_database_down_is_200(down_client: httpx.AsyncClient) -> None:
    assert (await down_client.get("/healthz")).status_code == 200
