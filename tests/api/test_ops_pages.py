"""The operator's pages over HTTP: queues, schedules and processes render what the service
knows, and their buttons follow the key's role."""

from __future__ import annotations

from tests.api.test_auth import ADMIN_KEY, READ_KEY, bearer, keyed_app
from tests.conftest import AppFactory
from tests.helpers import wait_until


async def test_queues_page_lists_queues_with_pause_buttons(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False, queues="default,emails")
    await client.post("/jobs", json={"task": "echo", "queue": "emails"})
    await client.post("/queues/emails/pause")
    page = await client.get("/ui/queues")
    assert page.status_code == 200
    assert 'data-queue="default"' in page.text
    assert 'data-post="queues/default/pause"' in page.text
    assert 'data-post="queues/emails/resume"' in page.text


async def test_queues_page_read_key_gets_disabled_buttons(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    read = await client.get("/ui/queues", headers=bearer(READ_KEY))
    assert 'data-allowed="false"' in read.text
    admin = await client.get("/ui/queues", headers=bearer(ADMIN_KEY))
    assert 'data-allowed="true"' in admin.text


async def test_schedules_page_shows_next_run_and_source(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    await client.post("/schedules", json={"name": "hourly-x", "cron": "@hourly", "task": "echo"})
    page = await client.get("/ui/schedules")
    assert page.status_code == 200
    assert 'data-schedule="hourly-x"' in page.text
    assert "<code>@hourly</code>" in page.text


async def test_processes_page_lists_the_live_process(start_app: AppFactory) -> None:
    client = await start_app(queues="default=3")

    async def listed() -> bool:
        return client.pool.config.worker_id in (await client.get("/ui/processes")).text

    await wait_until(listed, timeout=10, what="the process on the page")
    page = await client.get("/ui/processes")
    assert "default (3)" in page.text
    assert ">serve<" in page.text
