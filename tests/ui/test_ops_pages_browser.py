"""The operator's pages in a real browser (chromium, Playwright, real uvicorn and PostgreSQL):
pausing and resuming a queue and a schedule from their pages, and the processes page."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from tests.ui.support import CHROMIUM, screenshot
from tests.ui.test_dashboard_browser import (
    api,
    app_url,
    browser,
    expect,
    open_page,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Dialog

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no chromium at {CHROMIUM}")
__all__ = ["api", "app_url", "browser"]  # fixtures, used by name


async def _accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_queues_page_pause_button_pauses_the_queue_in_database(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await api.post("/jobs", json={"task": "echo"})
    page, errors = await open_page(browser, f"{app_url}/ui/queues")
    row = page.locator('tr[data-queue="default"]')
    await expect(row.locator('td[data-label="todo"]')).to_have_text("1")
    page.once("dialog", _accept)
    await row.get_by_role("button", name="Pause").click()
    await expect(row.get_by_role("button", name="Resume")).to_be_visible()
    await expect(row.locator('td[data-label="State"]')).to_have_text("paused")
    paused = await db.fetchval("SELECT paused_at IS NOT NULL FROM queues WHERE name = 'default'")
    assert paused is True
    await screenshot(page, "dashboard-queues-paused")
    page.once("dialog", _accept)
    await row.get_by_role("button", name="Resume").click()
    await expect(row.get_by_role("button", name="Pause")).to_be_visible()
    assert errors.messages == []


async def test_schedules_page_lists_and_pauses_a_schedule(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    created = await api.post(
        "/schedules",
        json={"name": "nightly", "cron": "0 3 * * *", "task": "echo", "timezone": "Europe/Paris"},
    )
    assert created.status_code == 201
    page, errors = await open_page(browser, f"{app_url}/ui/schedules")
    row = page.locator('tr[data-schedule="nightly"]')
    await expect(row.locator('td[data-label="Cron"]')).to_have_text("0 3 * * *")
    await expect(row.locator('td[data-label="Last run"]')).to_have_text("never")
    page.once("dialog", _accept)
    await row.get_by_role("button", name="Pause").click()
    await expect(row.locator('td[data-label="State"]')).to_have_text("paused")
    assert await db.fetchval("SELECT paused FROM schedules WHERE name = 'nightly'") is True
    await screenshot(page, "dashboard-schedules")
    assert errors.messages == []


async def test_processes_page_shows_the_empty_registry_of_an_api_only_app(
    browser: Browser, app_url: str
) -> None:
    # The app under test runs no workers; it announces itself as an api process.
    page, errors = await open_page(browser, f"{app_url}/ui/processes")
    await expect(page.locator("h1")).to_have_text("Processes")
    await screenshot(page, "dashboard-processes")
    assert errors.messages == []
