"""AsyncJobQueue against the real app: queues (counts, pause, resume), schedules (create,
read, list, change, pause, resume, delete) and the live processes."""

from __future__ import annotations

import pytest

from jobqueue.client import Conflict, NotFound, ValidationFailed
from tests.client.api.conftest import JobQueueFactory
from tests.helpers import wait_until

ZERO = {"todo": 0, "in_progress": 0, "done": 0, "failed": 0, "cancelled": 0}


async def test_queues_counts_jobs_per_status(connect: JobQueueFactory) -> None:
    jq = await connect(workers_enabled=False, queues="default,emails")
    await jq.enqueue("echo")
    await jq.enqueue("echo")
    cancelled = await jq.enqueue("echo", queue="emails")
    await jq.cancel(cancelled.id)

    queues = {queue.name: queue for queue in await jq.queues()}

    assert list(queues) == ["default", "emails"]
    assert queues["default"].counts == {**ZERO, "todo": 2}
    assert queues["emails"].counts == {**ZERO, "cancelled": 1}
    assert queues["default"].paused is False
    assert queues["default"].oldest_due_seconds is not None
    assert queues["default"].oldest_due_seconds >= 0
    assert queues["emails"].oldest_due_seconds is None


async def test_queues_pause_then_resume(connect: JobQueueFactory) -> None:
    jq = await connect(workers_enabled=False)

    paused = await jq.pause("default")
    listed = {queue.name: queue for queue in await jq.queues()}
    again = await jq.pause("default")
    resumed = await jq.resume("default")

    assert (paused.name, paused.paused) == ("default", True)
    assert paused.paused_at is not None
    assert listed["default"].paused is True
    assert again.paused is True
    assert (resumed.name, resumed.paused) == ("default", False)
    assert (await jq.queues())[0].paused is False


async def test_queues_pause_unknown_queue_is_not_found(connect: JobQueueFactory) -> None:
    jq = await connect(workers_enabled=False)

    with pytest.raises(NotFound) as raised:
        await jq.pause("nowhere")

    assert "nowhere" in str(raised.value.detail)


async def test_schedules_create_read_change_pause_delete(connect: JobQueueFactory) -> None:
    jq = await connect(workers_enabled=False)

    created = await jq.create_schedule(
        "nightly", "0 3 * * *", "echo", payload={"report": "daily"}, timezone="Europe/Paris"
    )
    second = await jq.create_schedule("hourly", "@hourly", "echo")
    read = await jq.get_schedule("nightly")
    changed = await jq.update_schedule("nightly", cron="30 3 * * *", priority=5)
    paused = await jq.pause_schedule("nightly")
    resumed = await jq.resume_schedule("nightly")
    listed = [schedule.name for schedule in await jq.schedules()]
    await jq.delete_schedule("nightly")

    assert (created.name, created.cron, created.timezone) == (
        "nightly",
        "0 3 * * *",
        "Europe/Paris",
    )
    assert (created.task, created.payload, created.queue) == (
        "echo",
        {"report": "daily"},
        "default",
    )
    assert (created.source, created.paused, created.last_run_at) == ("api", False, None)
    assert created.next_run_at > created.created_at
    assert second.cron == "@hourly"
    assert read == created
    assert (changed.cron, changed.priority, changed.payload) == (
        "30 3 * * *",
        5,
        {"report": "daily"},
    )
    assert (paused.paused, resumed.paused) == (True, False)
    assert listed == ["hourly", "nightly"]
    assert [schedule.name for schedule in await jq.schedules()] == ["hourly"]
    with pytest.raises(NotFound):
        await jq.get_schedule("nightly")


async def test_schedules_taken_name_conflicts_bad_cron_is_validation_failed(
    connect: JobQueueFactory,
) -> None:
    jq = await connect(workers_enabled=False)
    await jq.create_schedule("nightly", "0 3 * * *", "echo")

    with pytest.raises(Conflict):
        await jq.create_schedule("nightly", "0 4 * * *", "echo")
    with pytest.raises(ValidationFailed) as raised:
        await jq.create_schedule("other", "* * *", "echo")

    assert "five fields" in str(raised.value.detail)


async def test_workers_lists_this_process_with_its_slots(connect: JobQueueFactory) -> None:
    jq = await connect(queues="default=3,emails=2")

    async def announced() -> bool:
        return bool((await jq.workers()).items)

    await wait_until(announced, timeout=10, what="the process's registry row")
    listing = await jq.workers()

    (process,) = listing.items
    assert process.role == "serve"
    assert process.queues == {"default": 3, "emails": 2}
    assert (listing.slots, listing.busy) == (5, 0)
    assert "echo" in process.tasks
    assert process.seen_at >= process.started_at
