"""``/queues``: the list with counts per status, and pause / resume with their roles, 404s and
audit events."""

from __future__ import annotations

import asyncpg
import structlog

from tests.api.test_audit import audits
from tests.api.test_auth import ADMIN_KEY, READ_KEY, bearer, keyed_app
from tests.conftest import AppFactory
from tests.helpers import wait_until

ZERO = {"todo": 0, "in_progress": 0, "done": 0, "failed": 0, "cancelled": 0}


async def test_queues_list_counts_jobs_per_status_of_each_queue(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False, queues="default,emails")
    for _ in range(2):
        await client.post("/jobs", json={"task": "echo"})
    await client.post("/jobs", json={"task": "echo", "queue": "emails"})
    await db.execute("UPDATE jobs SET status = 'done', finished_at = now() WHERE queue = 'emails'")
    response = await client.get("/queues")
    assert response.status_code == 200
    items = {item["name"]: item for item in response.json()["items"]}
    assert list(items) == ["default", "emails"]
    assert items["default"]["counts"] == {**ZERO, "todo": 2}
    assert items["emails"]["counts"] == {**ZERO, "done": 1}
    assert items["default"]["paused"] is False
    assert items["default"]["slots_online"] == 0  # no process with workers
    assert items["default"]["oldest_due_seconds"] >= 0
    assert items["emails"]["oldest_due_seconds"] is None


async def test_queues_slots_online_from_the_process_registry(start_app: AppFactory) -> None:
    client = await start_app(queues="default=3,emails=2")

    async def announced() -> bool:
        listed = (await client.get("/queues")).json()["items"]
        return any(item["slots_online"] for item in listed)

    await wait_until(announced, timeout=10, what="the process's registry row")
    items = {item["name"]: item for item in (await client.get("/queues")).json()["items"]}
    assert items["default"]["slots_online"] == 3
    assert items["emails"]["slots_online"] == 2


async def test_queue_pause_then_resume_shows_in_the_list(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    paused = await client.post("/queues/default/pause")
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert paused.json()["paused_by"] == "anonymous"
    listed = (await client.get("/queues")).json()["items"][0]
    assert (listed["paused"], listed["paused_by"]) == (True, "anonymous")
    again = await client.post("/queues/default/pause")
    assert again.json()["paused_at"] == paused.json()["paused_at"]  # a second pause changes nothing
    resumed = await client.post("/queues/default/resume")
    assert resumed.json() == {
        "name": "default",
        "paused": False,
        "paused_at": None,
        "paused_by": None,
    }
    assert (await client.get("/queues")).json()["items"][0]["paused"] is False


async def test_queue_pause_unknown_queue_is_404_naming_the_known_ones(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False, queues="default,emails")
    response = await client.post("/queues/nope/pause")
    assert response.status_code == 404
    assert response.json()["detail"] == "queue 'nope' is not known; known queues: default, emails"


async def test_queue_pause_bad_name_is_422(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.post("/queues/a%20b/pause")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "name"]


async def test_queue_pause_needs_admin_and_names_the_key(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    denied = await client.post("/queues/default/pause", headers=bearer(READ_KEY))
    assert denied.status_code == 403
    assert (await client.get("/queues", headers=bearer(READ_KEY))).status_code == 200
    with structlog.testing.capture_logs() as logs:
        paused = await client.post("/queues/default/pause", headers=bearer(ADMIN_KEY))
    assert paused.json()["paused_by"] == "ops"
    assert audits(logs) == [
        {
            "event": "audit",
            "principal": "ops",
            "via": "bearer",
            "action": "pause",
            "queue": "default",
            "outcome": "ok",
            "status": None,
        }
    ]
