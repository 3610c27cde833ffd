"""``/schedules`` and the scheduler's rounds: CRUD with its 4xx, one job per slot, one
catch-up job after downtime, pause and resume, and the settings' schedules."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
import structlog

from jobqueue.api.app import schedule_specs
from jobqueue.errors import ConfigurationError
from jobqueue.service import ScheduleSpec
from jobqueue.settings import Settings
from tests.api.test_audit import audits
from tests.api.test_auth import ADMIN_KEY, READ_KEY, bearer, keyed_app
from tests.conftest import AppClient, AppFactory
from tests.helpers import one, other_process, wait_until

NIGHTLY = {
    "name": "nightly",
    "cron": "0 3 * * *",
    "timezone": "Europe/Paris",
    "task": "echo",
    "payload": {"report": "daily"},
}


async def _api(start_app: AppFactory, **overrides: Any) -> AppClient:
    # No workers: no scheduler loop, so the tests run the rounds themselves.
    return await start_app(workers_enabled=False, **overrides)


async def _due(db: asyncpg.Connection, name: str, minutes_ago: int) -> None:
    await db.execute(
        "UPDATE schedules SET next_run_at = now() - make_interval(mins => $2) WHERE name = $1",
        name,
        minutes_ago,
    )


async def test_schedule_create_then_read_with_next_slot(start_app: AppFactory) -> None:
    client = await _api(start_app)
    created = await client.post("/schedules", json=NIGHTLY)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["next_run_at"].endswith(("T01:00:00Z", "T02:00:00Z"))  # 03:00 Paris
    assert (body["paused"], body["source"], body["last_run_at"]) == (False, "api", None)
    assert (await client.get("/schedules/nightly")).json() == body
    assert [s["name"] for s in (await client.get("/schedules")).json()["items"]] == ["nightly"]


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        ({"cron": "* * *"}, 422, "must have five fields"),
        ({"timezone": "Mars/Base"}, 422, "not an IANA time zone"),
        ({"task": "nope"}, 422, "unknown task 'nope'"),
        ({"queue": "nowhere"}, 422, "unknown queue 'nowhere'"),
        ({"priority": True}, 422, None),
        ({"name": "bad name"}, 422, None),
        ({"extra": 1}, 422, None),
    ],
)
async def test_schedule_bad_definition_is_422_saying_why(
    start_app: AppFactory, change: dict[str, Any], status: int, detail: str | None
) -> None:
    client = await _api(start_app)
    response = await client.post("/schedules", json={**NIGHTLY, **change})
    assert response.status_code == status
    if detail is not None:
        assert detail in response.json()["detail"]


async def test_schedule_name_taken_is_409_and_unknown_is_404(start_app: AppFactory) -> None:
    client = await _api(start_app)
    await client.post("/schedules", json=NIGHTLY)
    again = await client.post("/schedules", json=NIGHTLY)
    assert again.status_code == 409
    assert "exists already" in again.json()["detail"]
    for method, path in [
        ("GET", "/schedules/nope"),
        ("PATCH", "/schedules/nope"),
        ("DELETE", "/schedules/nope"),
        ("POST", "/schedules/nope/pause"),
    ]:
        response = await client.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path)


async def test_schedule_patch_cron_moves_next_slot_and_keeps_the_rest(
    start_app: AppFactory,
) -> None:
    client = await _api(start_app)
    await client.post("/schedules", json=NIGHTLY)
    patched = await client.patch("/schedules/nightly", json={"cron": "*/5 * * * *"})
    assert patched.status_code == 200
    body = patched.json()
    assert body["cron"] == "*/5 * * * *"
    assert body["payload"] == {"report": "daily"}
    assert body["next_run_at"][14:16] in {f"{m:02d}" for m in range(0, 60, 5)}


async def test_schedule_delete_then_gone(start_app: AppFactory) -> None:
    client = await _api(start_app)
    await client.post("/schedules", json=NIGHTLY)
    assert (await client.delete("/schedules/nightly")).status_code == 204
    assert (await client.get("/schedules/nightly")).status_code == 404


async def test_scheduler_round_creates_one_job_for_the_slot(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await _api(start_app)
    await client.post("/schedules", json={**NIGHTLY, "cron": "* * * * *", "timezone": "UTC"})
    await _due(db, "nightly", 0)
    fired = await client.runtime.service.schedules.fire_due()
    assert [f.name for f in fired] == ["nightly"]
    job = await one(db, "SELECT task, payload, idempotency_key FROM jobs")
    assert job["task"] == "echo"
    assert json.loads(job["payload"]) == {"report": "daily"}
    assert job["idempotency_key"] == f"schedule:nightly:{fired[0].slot.isoformat()}"
    schedule = (await client.get("/schedules/nightly")).json()
    assert schedule["last_job_id"] == fired[0].job_id
    assert await client.runtime.service.schedules.fire_due() == []  # next slot not due yet


async def test_scheduler_two_processes_same_slot_one_job(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    first, second = await _api(start_app), await _api(start_app)
    await first.post("/schedules", json={**NIGHTLY, "cron": "* * * * *", "timezone": "UTC"})
    for _ in range(5):
        await _due(db, "nightly", 0)
        await asyncio.gather(
            first.runtime.service.schedules.fire_due(),
            second.runtime.service.schedules.fire_due(),
        )
    keys = [row["idempotency_key"] for row in await db.fetch("SELECT idempotency_key FROM jobs")]
    assert len(keys) == len(set(keys))  # never two jobs for one slot
    assert 1 <= len(keys) <= 5


async def test_scheduler_after_downtime_one_catch_up_job(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await _api(start_app)
    await client.post("/schedules", json={**NIGHTLY, "cron": "* * * * *", "timezone": "UTC"})
    await _due(db, "nightly", 600)  # ten hours of slots missed
    with structlog.testing.capture_logs() as logs:
        fired = await client.runtime.service.schedules.fire_due()
    assert len(fired) == 1
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1
    assert any(entry["event"] == "schedule_slots_skipped" for entry in logs)
    assert await client.runtime.service.schedules.fire_due() == []


async def test_scheduler_paused_schedule_fires_nothing_and_resume_skips_missed(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await _api(start_app)
    await client.post("/schedules", json={**NIGHTLY, "cron": "* * * * *", "timezone": "UTC"})
    assert (await client.post("/schedules/nightly/pause")).json()["paused"] is True
    await _due(db, "nightly", 5)
    assert await client.runtime.service.schedules.fire_due() == []
    resumed = (await client.post("/schedules/nightly/resume")).json()
    assert resumed["paused"] is False
    assert await client.runtime.service.schedules.fire_due() == []  # next slot is in the future
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_scheduler_task_gone_skips_the_slot_and_keeps_the_schedule(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await _api(start_app)
    await client.post("/schedules", json={**NIGHTLY, "cron": "* * * * *", "timezone": "UTC"})
    await db.execute("UPDATE schedules SET task = 'removed'")
    await _due(db, "nightly", 0)
    with structlog.testing.capture_logs() as logs:
        [fired] = await client.runtime.service.schedules.fire_due()
    assert fired.job_id is None
    assert any(entry["event"] == "schedule_fire_failed" for entry in logs)
    assert (await client.get("/schedules/nightly")).status_code == 200


async def test_schedule_changes_need_admin_and_are_audited(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    denied = await client.post("/schedules", json=NIGHTLY, headers=bearer(READ_KEY))
    assert denied.status_code == 403
    assert (await client.get("/schedules", headers=bearer(READ_KEY))).status_code == 200
    with structlog.testing.capture_logs() as logs:
        created = await client.post("/schedules", json=NIGHTLY, headers=bearer(ADMIN_KEY))
    assert created.status_code == 201
    [event] = audits(logs)
    assert (event["action"], event["target"], event["principal"]) == (
        "schedule_create",
        "nightly",
        "ops",
    )


async def test_settings_schedules_written_at_worker_start(start_app: AppFactory) -> None:
    settings_list = json.dumps([{**NIGHTLY, "cron": "@hourly"}])
    client = await start_app(schedules=settings_list)
    body = (await client.get("/schedules/nightly")).json()
    assert (body["source"], body["cron"]) == ("settings", "@hourly")


def test_settings_schedules_bad_json_refused_with_where() -> None:
    settings = Settings(_env_file=None, schedules='[{"name": "x", "cron": 5}]')
    with pytest.raises(ConfigurationError, match=r"JOBQUEUE_SCHEDULES: .* at 0\.cron"):
        schedule_specs(settings)


def test_settings_schedules_name_twice_refused() -> None:
    settings = Settings(_env_file=None, schedules=json.dumps([NIGHTLY, NIGHTLY]))
    with pytest.raises(ConfigurationError, match="named twice"):
        schedule_specs(settings)


async def test_settings_schedule_with_unknown_task_stops_the_start(start_app: AppFactory) -> None:
    bad = json.dumps([{**NIGHTLY, "task": "nope"}])
    with pytest.raises(ConfigurationError, match="schedule 'nightly': unknown task 'nope'"):
        await start_app(schedules=bad)


@pytest.mark.parametrize(
    "send",
    [
        {"headers": {"Idempotency-Key": "schedule:nightly:2026-12-07T16:43:00+00:00"}},
        {"json_extra": {"idempotency_key": "schedule:nightly:x"}},
    ],
)
async def test_client_key_with_schedule_prefix_is_422(
    start_app: AppFactory, send: dict[str, Any]
) -> None:
    client = await _api(start_app)
    body = {"task": "echo", **send.get("json_extra", {})}
    response = await client.post("/jobs", json=body, headers=send.get("headers", {}))
    assert response.status_code == 422
    assert "reserved for the jobs of schedules" in response.text
    batch = await client.post(
        "/jobs/batch", json={"jobs": [{"task": "echo", "idempotency_key": "schedule:a:b"}]}
    )
    assert batch.status_code == 422


@pytest.mark.parametrize("timezone", ["Europe", "localtime", "__pycache__", "Factory", "../etc"])
async def test_schedule_folder_or_host_zone_is_422_on_create_and_patch(
    start_app: AppFactory, timezone: str
) -> None:
    client = await _api(start_app)
    created = await client.post("/schedules", json={**NIGHTLY, "timezone": timezone})
    assert created.status_code == 422
    assert "not an IANA time zone" in created.json()["detail"]
    await client.post("/schedules", json=NIGHTLY)
    patched = await client.patch("/schedules/nightly", json={"timezone": timezone})
    assert patched.status_code == 422


@pytest.mark.parametrize("name", [".", "..", "-", "::"])
async def test_schedule_name_without_letter_or_digit_is_422(
    start_app: AppFactory, name: str
) -> None:
    client = await _api(start_app)
    response = await client.post("/schedules", json={**NIGHTLY, "name": name})
    assert response.status_code == 422


async def test_schedule_payload_over_64_kib_is_422(start_app: AppFactory) -> None:
    client = await _api(start_app)
    big = {**NIGHTLY, "payload": {"blob": "x" * 70_000}}
    response = await client.post("/schedules", json=big)
    assert response.status_code == 422
    assert "at most 65536 bytes" in response.json()["detail"]


async def test_schedules_list_pages_by_name(start_app: AppFactory) -> None:
    client = await _api(start_app)
    for name in ("c", "a", "b"):
        await client.post("/schedules", json={**NIGHTLY, "name": name})
    first = (await client.get("/schedules", params={"limit": 2})).json()
    assert [s["name"] for s in first["items"]] == ["a", "b"]
    assert first["next_after"] == "b"
    rest = (await client.get("/schedules", params={"limit": 2, "after": "b"})).json()
    assert ([s["name"] for s in rest["items"]], rest["next_after"]) == (["c"], None)


async def test_scheduler_many_due_schedules_fire_in_one_round(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await _api(start_app)
    await db.execute(
        "INSERT INTO schedules (name, cron, task, next_run_at)"
        " SELECT 's' || g, '* * * * *', 'echo', now() - interval '1 second'"
        " FROM generate_series(1, 1200) g"
    )
    fired = await client.runtime.service.schedules.fire_due()
    assert len(fired) == 1200
    assert all(f.job_id is not None for f in fired)
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1200
    text = (await client.get("/metrics")).text
    assert 'jobqueue_schedule_slots_total{outcome="fired"} 1200.0' in text


async def test_settings_schedule_restart_keeps_next_slot_for_the_catch_up(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await _api(start_app)
    spec = ScheduleSpec(name="set-min", cron="* * * * *", task="echo")
    await client.runtime.service.schedules.sync([spec])
    await _due(db, "set-min", 3)  # every worker was down over three slots
    await client.runtime.service.schedules.sync([spec])  # a worker starts again
    fired = await client.runtime.service.schedules.fire_due()
    assert [f.name for f in fired] == ["set-min"]  # the one catch-up job
    moved = ScheduleSpec(name="set-min", cron="0 3 * * *", task="echo")
    await client.runtime.service.schedules.sync([moved])
    row = (await client.get("/schedules/set-min")).json()
    assert row["next_run_at"].endswith("T03:00:00Z")  # a new cron moves the next slot


async def test_schedule_on_a_queue_only_a_live_worker_serves_is_accepted_at_once(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await _api(start_app)
    await other_process(db, tasks=["echo"], queues={"reports": 1})
    # A miss reads the registry again at most once a second (the catalog's refresh interval):
    # accepted within that, whenever the registry loop last read it.
    answers: list[int] = []

    async def accepted() -> bool:
        response = await client.post("/schedules", json={**NIGHTLY, "queue": "reports"})
        answers.append(response.status_code)
        return response.status_code == 201

    await wait_until(accepted, timeout=3, what="the schedule to be accepted")
    assert set(answers[:-1]) <= {422}


async def test_worker_start_with_settings_schedule_on_another_workers_queue(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    await other_process(db, tasks=["echo"], queues={"default": 4})
    listed = json.dumps([{**NIGHTLY, "queue": "default"}])
    client = await start_app(queues="reports=1", schedules=listed)
    assert (await client.get("/schedules/nightly")).json()["queue"] == "default"


async def test_schedules_list_after_with_nul_is_422(start_app: AppFactory) -> None:
    client = await _api(start_app)
    response = await client.get("/schedules", params={"after": "\x00"})
    assert response.status_code == 422


@pytest.mark.parametrize("cron", ["* * * * \u00a0*", "0\u30003 * * *", "0 3 * * *\n"])
async def test_schedule_cron_with_unicode_or_control_space_is_422(
    start_app: AppFactory, cron: str
) -> None:
    client = await _api(start_app)
    response = await client.post("/schedules", json={**NIGHTLY, "cron": cron})
    assert response.status_code == 422
    assert "printable ASCII" in response.json()["detail"]


async def test_schedules_page_says_when_more_than_it_shows(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await _api(start_app)
    await db.execute(
        "INSERT INTO schedules (name, cron, task, next_run_at)"
        " SELECT 's' || lpad(g::text, 4, '0'), '@daily', 'echo', now() + interval '1 day'"
        " FROM generate_series(1, 501) g"
    )
    page = (await client.get("/ui/schedules")).text
    assert page.count("data-schedule=") == 500
    assert 'id="schedules-more"' in page
    assert "after=s0500" in page


def test_settings_schedules_duplicate_key_refused() -> None:
    settings = Settings(
        _env_file=None, schedules='[{"name": "a", "cron": "@daily", "task": "echo", "name": "b"}]'
    )
    with pytest.raises(ConfigurationError, match="duplicate key 'name'"):
        schedule_specs(settings)
