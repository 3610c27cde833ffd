"""The client against an in-process app (``start_app``: a real PostgreSQL, the app's lifespan
and worker pool) over ``httpx.ASGITransport``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from jobqueue.client import AsyncJobQueue
from tests.conftest import AppClient, AppFactory

JobQueueFactory = Callable[..., Awaitable[AsyncJobQueue]]


def client_of(app: AppClient, key: str | None = None, **options: Any) -> AsyncJobQueue:
    """An :class:`AsyncJobQueue` of ``app`` (``localhost``: a loopback name the app serves)."""
    transport = httpx.ASGITransport(app=app.app)
    return AsyncJobQueue("http://localhost", key, transport=transport, **options)


@pytest.fixture
async def connect(start_app: AppFactory) -> AsyncIterator[JobQueueFactory]:
    """``await connect(key=None, **settings)``: start an app with ``settings`` and return a
    client of it; every client is closed at the end."""
    clients: list[AsyncJobQueue] = []

    async def make(key: str | None = None, **settings: Any) -> AsyncJobQueue:
        app = await start_app(**settings)
        client = client_of(app, key)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
