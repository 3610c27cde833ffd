"""The dashboard in a real browser: Debian's chromium driven by Python Playwright against a real
uvicorn serving the app on a real PostgreSQL (workers disabled, so jobs stay where the test puts
them). Every page is checked for console errors and saved as a screenshot in test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from jobqueue.api.app import create_app
from jobqueue.settings import Settings
from jobqueue.tasks.registry import TaskRegistry
from tests.helpers import one, wait_until

if TYPE_CHECKING:
    from playwright.async_api import Browser, Dialog, Locator, Page
from tests.ui.support import (
    CHROMIUM,
    PageErrors,
    announce_finished,
    launch_chromium,
    screenshot,
    serve,
    set_status,
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"no chromium at {CHROMIUM}: `apt-get install chromium` (make test does it as root)",
)
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="python playwright is not installed: pip install -e '.[dev]'"
)
expect = playwright_api.expect

TIMEOUT_MS = 10_000


@pytest.fixture
async def app_url(
    make_settings: Callable[..., Settings], registry: TaskRegistry
) -> AsyncIterator[str]:
    """A real uvicorn serving the app (no workers) on the test database."""
    settings = make_settings(workers_enabled=False, remote_queues="emails,a-rather-long-queue-name")
    app = create_app(settings, registry=registry)
    async with serve(app) as url:
        yield url


@pytest.fixture
async def api(app_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the served app, to create jobs."""
    async with httpx.AsyncClient(base_url=app_url) as client:
        yield client


@pytest.fixture
async def browser(app_url: str) -> AsyncIterator[Browser]:
    """Chromium; closed before the server stops (it depends on ``app_url``)."""
    playwright = await playwright_api.async_playwright().start()
    try:
        browser = await launch_chromium(playwright)
        yield browser
        await browser.close()
    finally:
        await playwright.stop()


async def open_page(
    browser: Browser, url: str, width: int = 1280, height: int = 900
) -> tuple[Page, PageErrors]:
    """A new page at ``url`` with its error collector."""
    page = await browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    errors = PageErrors(page)
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200, url
    return page, errors


async def create(api: httpx.AsyncClient, count: int = 1, **spec: object) -> list[int]:
    ids = []
    for _ in range(count):
        response = await api.post("/jobs", json=spec)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def status_of(db: asyncpg.Connection, job_id: int) -> str:
    status: str = await db.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
    return status


async def test_overview_shows_counts_and_refreshes_live(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    default = await create(api, 5)
    emails = await create(api, 2, queue="emails")
    await set_status(db, default[:2], "done")
    await set_status(db, default[2:3], "failed")
    await set_status(db, default[3:4], "in_progress")
    await set_status(db, emails[:1], "cancelled")
    await announce_finished(db, done=2, failed=1)
    page, errors = await open_page(browser, f"{app_url}/ui")

    def cell(queue: str, status: str) -> Locator:
        return page.locator(f'#counts-table td[data-queue="{queue}"][data-status="{status}"]')

    expected = {
        ("default", "todo"): "1",
        ("default", "in_progress"): "1",
        ("default", "done"): "2",
        ("default", "failed"): "1",
        ("default", "cancelled"): "0",
        ("default", "total"): "5",
        ("emails", "todo"): "1",
        ("emails", "cancelled"): "1",
        ("*", "total"): "7",
    }
    for (queue, status), text in expected.items():
        await expect(cell(queue, status)).to_have_text(text)
    await expect(page.locator("#stat-failure-rate")).to_have_text("33.3 %")
    await expect(page.locator("#stat-workers")).to_have_text("off")
    await expect(page.locator("#throughput-chart svg rect.bar-done")).to_have_count(1)
    await create(api, 2, queue="emails")  # the page polls: the new jobs appear without a reload
    await expect(cell("emails", "todo")).to_have_text("3")
    await expect(cell("*", "total")).to_have_text("9")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    await screenshot(page, "dashboard-overview")
    assert errors.messages == []


async def test_overview_fits_a_phone_screen(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    ids = await create(api, 3)
    await create(api, 1, queue="a-rather-long-queue-name")
    await set_status(db, ids[:1], "done")
    page, errors = await open_page(browser, f"{app_url}/ui", width=375, height=812)
    await expect(page.locator('td[data-queue="default"][data-status="done"]')).to_have_text("1")
    await expect(page.locator("#failure-chart svg")).to_have_count(1)
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px on a 375 px screen"
    await screenshot(page, "dashboard-overview-phone")
    assert errors.messages == []


async def test_overview_with_more_queues_than_listed_shows_the_rest_in_one_row(
    browser: Browser, app_url: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO jobs (task, queue) SELECT 'echo', 'q' || i FROM generate_series(1, 53) AS i"
    )
    page, errors = await open_page(browser, f"{app_url}/ui")
    await expect(page.locator("#counts-body tr")).to_have_count(51)
    await db.execute("INSERT INTO jobs (task, queue) VALUES ('echo', 'q54')")
    more = page.locator("#counts-more")  # the page polls: the new queue joins the rest
    await expect(more.locator("th")).to_contain_text("4 more queues")
    await expect(more.locator('td[data-status="todo"]')).to_have_text("4")
    await expect(page.locator('#counts-foot td[data-status="total"]')).to_have_text("54")
    assert errors.messages == []


async def test_jobs_list_filter_narrows_rows_and_links_to_detail(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    invoices = await create(api, 3, description="send invoice")
    await create(api, 2, description="build report")
    await set_status(db, invoices[1:2], "failed")
    page, errors = await open_page(browser, f"{app_url}/ui/jobs")
    await expect(page.locator("tr[data-job-id]")).to_have_count(5)
    await page.select_option("#f-status", "failed")
    await page.fill("#f-q", "invoice")
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"status=failed.*q=invoice"))
    rows = page.locator("tr[data-job-id]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-job-id", str(invoices[1]))
    await expect(page.locator("#f-status")).to_have_value("failed")  # the form keeps the filter
    await screenshot(page, "dashboard-jobs")
    await page.click(f"a.job-link[href$='/ui/jobs/{invoices[1]}']")
    await expect(page).to_have_url(f"{app_url}/ui/jobs/{invoices[1]}")
    await expect(page.locator("h1")).to_contain_text(f"Job #{invoices[1]}")
    await expect(page.locator("#job-status-badge")).to_have_text("failed")
    assert errors.messages == []


async def test_cancel_todo_job_from_detail_page_cancels_it_in_database(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    (job_id,) = await create(api, payload={"to": "someone"}, description="to cancel")
    page, errors = await open_page(browser, f"{app_url}/ui/jobs/{job_id}")
    await expect(page.locator("#job-payload")).to_contain_text('"to": "someone"')
    dialogs: list[str] = []

    async def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await page.focus("button[data-action=cancel]")  # keyboard: a real button takes Enter
    await page.keyboard.press("Enter")
    await expect(page.locator("#job-status-badge")).to_have_text("cancelled")
    await expect(page.locator("#action-message")).to_contain_text("Job cancelled.")
    await expect(page.locator("button[data-action=cancel]")).to_be_disabled()
    await expect(page.locator("button[data-action=retry]")).to_be_enabled()
    assert dialogs == [f"Cancel job #{job_id}?"]
    assert await status_of(db, job_id) == "cancelled"
    await screenshot(page, "dashboard-job-cancelled")
    assert errors.messages == []


async def test_dismissed_confirmation_changes_nothing(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    (job_id,) = await create(api)
    page, errors = await open_page(browser, f"{app_url}/ui/jobs/{job_id}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.click("button[data-action=cancel]")
    await expect(page.locator("button[data-action=cancel]")).to_be_enabled()
    await expect(page.locator("#job-status-badge")).to_have_text("todo")
    assert await status_of(db, job_id) == "todo"
    assert errors.messages == []


async def test_retry_failed_job_from_detail_page_makes_it_todo_in_database(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    (job_id,) = await create(api, task="fail", payload={"message": "boom"})
    await set_status(db, [job_id], "failed")
    await db.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error_type,"
        " error_message, traceback) VALUES ($1, 1, 'test-worker', now() - interval '2 seconds',"
        " 'failed', 'RuntimeError', 'boom', 'Traceback (most recent call last): ...')",
        job_id,
    )
    page, errors = await open_page(browser, f"{app_url}/ui/jobs/{job_id}")
    await expect(page.locator("#attempts-table tbody tr")).to_have_count(1)
    await expect(page.locator("#job-error")).to_have_text("RuntimeError: boom")
    await screenshot(page, "dashboard-job-failed")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("button[data-action=retry]")
    await expect(page.locator("#job-status-badge")).to_have_text("todo")
    await expect(page.locator("#action-message")).to_contain_text("queued again")
    assert await status_of(db, job_id) == "todo"
    assert errors.messages == []


async def test_enqueue_copy_from_detail_page_creates_the_same_job(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    (job_id,) = await create(
        api,
        task="sleep",
        queue="emails",
        payload={"seconds": 1},
        priority=5,
        description="copy me",
    )
    page, errors = await open_page(browser, f"{app_url}/ui/jobs/{job_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("button[data-action=copy]")
    link = page.locator("#action-message a")
    await expect(link).to_have_text(re.compile(r"job #\d+"))
    copy_id = int((await link.text_content() or "").removeprefix("job #"))
    assert copy_id != job_id

    async def copied() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM jobs") == 2)

    await wait_until(copied, timeout=5, what="the copy")
    row = await one(
        db,
        "SELECT task, queue, payload::text, priority, description, status FROM jobs WHERE id = $1",
        copy_id,
    )
    assert tuple(row) == ("sleep", "emails", '{"seconds": 1}', 5, "copy me", "todo")
    await link.click()
    await expect(page.locator("h1")).to_contain_text(f"Job #{copy_id}")
    assert errors.messages == []


async def test_job_above_2_pow_53_cancel_and_copy_keep_exact_id_and_payload(
    browser: Browser, app_url: str, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # A JavaScript number rounds 2^53 + 1 to 2^53: a decoy job sits at that rounded id.
    await db.execute("ALTER SEQUENCE jobs_id_seq RESTART WITH 9007199254740992")
    (decoy,) = await create(api, description="decoy")
    (job_id,) = await create(api, payload={"n": 9007199254740993, "f": 0.1}, description="big")
    assert (decoy, job_id) == (2**53, 2**53 + 1)
    page, errors = await open_page(browser, f"{app_url}/ui/jobs/{job_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    await page.click("button[data-action=cancel]")
    await expect(page.locator("#action-message")).to_contain_text("Job cancelled.")
    assert (await status_of(db, job_id), await status_of(db, decoy)) == ("cancelled", "todo")

    await page.click("button[data-action=copy]")
    link = page.locator("#action-message a")
    await expect(link).to_have_text(f"job #{2**53 + 2}")
    original, copy = await db.fetch(
        "SELECT payload::text, description FROM jobs WHERE id = ANY($1::bigint[]) ORDER BY id",
        [job_id, 2**53 + 2],
    )
    assert tuple(copy) == tuple(original)
    assert original["payload"] == '{"f": 0.1, "n": 9007199254740993}'
    await link.click()
    await expect(page.locator("h1")).to_contain_text(f"Job #{2**53 + 2}")
    assert errors.messages == []


async def test_login_form_then_cancel_job_with_session(
    browser: Browser,
    make_settings: Callable[..., Settings],
    registry: TaskRegistry,
    db: asyncpg.Connection,
) -> None:
    admin_key = "Y5YhGuxScX181Bd43cgPqpZ3IlGc1sJDXGbIFPiO69Q"
    keys = f'[{{"name": "ops", "role": "admin", "key": "{admin_key}"}}]'
    app = create_app(make_settings(workers_enabled=False, api_keys=keys), registry=registry)
    async with serve(app) as url:
        async with httpx.AsyncClient(base_url=url) as api:
            response = await api.post(
                "/jobs", json={"task": "echo"}, headers={"Authorization": f"Bearer {admin_key}"}
            )
            assert response.status_code == 201, response.text
            job_id = response.json()["id"]
        page, errors = await open_page(browser, f"{url}/ui/jobs/{job_id}")
        await expect(page).to_have_url(re.compile(r"/ui/login\?next="))
        await screenshot(page, "dashboard-login")
        await page.fill("#login-key", admin_key)
        await page.click("form.login-form button[type=submit]")
        await expect(page).to_have_url(f"{url}/ui/jobs/{job_id}")
        await expect(page.locator("#session-user")).to_contain_text("ops")
        (cookie,) = await page.context.cookies()
        assert (cookie["name"], cookie["path"], cookie["httpOnly"], cookie["sameSite"]) == (
            "jq_session", "/ui", True, "Strict"
        )  # fmt: skip
        assert admin_key not in cookie["value"]
        page.once("dialog", lambda dialog: dialog.accept())
        await page.click("button[data-action=cancel]")
        await expect(page.locator("#job-status-badge")).to_have_text("cancelled")
        await expect(page.locator("#action-message")).to_contain_text("Job cancelled.")
        assert await status_of(db, job_id) == "cancelled"
        await screenshot(page, "dashboard-job-session")
        assert errors.messages == []
        await page.close()


async def test_docs_render_swagger_ui_from_local_assets_under_csp(
    browser: Browser, app_url: str
) -> None:
    page, errors = await open_page(browser, f"{app_url}/docs")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.reload()

    await expect(page.locator(".opblock-summary-path").first).to_be_visible()
    await expect(page.get_by_text("/jobs/batch").first).to_be_visible()
    await screenshot(page, "docs")
    # Swagger UI ran (so its inline script passed the CSP hash), and nothing was refused or
    # fetched from elsewhere.
    assert errors.messages == []
    assert requested
    assert all(url.startswith(app_url) or url.startswith("data:") for url in requested)
