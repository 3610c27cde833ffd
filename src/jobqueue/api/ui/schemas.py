"""Pydantic models of the dashboard's JSON (``GET /ui/api/overview``), which its page polls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobqueue.service.dashboard import Overview


class QueueCountsOut(BaseModel):
    """Jobs of one queue per status (every status present, zeros included)."""

    queue: str
    counts: dict[str, int]
    total: int


class MinuteOut(BaseModel):
    """Jobs that finished in one minute (``minute``: its start, UTC)."""

    minute: datetime
    done: int
    failed: int


class WorkersOut(BaseModel):
    """This process's worker slots: ``busy`` of ``total`` hold a job (queued or running)."""

    busy: int
    total: int


class WithoutWorkerOut(BaseModel):
    """``jobs`` todo jobs of ``task`` on ``queue`` that no live process can run."""

    queue: str
    task: str
    jobs: int


class OverviewOut(BaseModel):
    """The dashboard's overview.

    ``queues`` by name, at most 50 (the largest); ``other_queues`` counts the queues not
    listed and ``other_counts`` adds up their jobs per status; ``throughput``: jobs finished
    (``done``/``failed``) per minute over the last hour, oldest first, 61 minutes (the first
    and the last partial);
    ``failure_rate``: ``failed / (done + failed)`` over that hour, 0 to 1, null when none
    finished; ``workers``: busy and total runner slots over every live process (this one's now,
    the others' as of their last registry renewal, at most 10 s old), null when none runs
    workers;
    ``without_worker``: todo jobs no live process can run (no process serves the queue with
    the task), most first, at most 20 pairs.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "statuses": ["todo", "in_progress", "done", "failed", "cancelled"],
                    "queues": [
                        {
                            "queue": "default",
                            "counts": {
                                "todo": 2,
                                "in_progress": 1,
                                "done": 40,
                                "failed": 1,
                                "cancelled": 0,
                            },
                            "total": 44,
                        }
                    ],
                    "other_queues": 0,
                    "other_counts": {
                        "todo": 0,
                        "in_progress": 0,
                        "done": 0,
                        "failed": 0,
                        "cancelled": 0,
                    },
                    "totals": {
                        "todo": 2,
                        "in_progress": 1,
                        "done": 40,
                        "failed": 1,
                        "cancelled": 0,
                    },
                    "total": 44,
                    "throughput": [{"minute": "2026-11-29T12:00:00Z", "done": 40, "failed": 1}],
                    "done_last_hour": 40,
                    "failed_last_hour": 1,
                    "failure_rate": 0.024,
                    "workers": {"busy": 1, "total": 10},
                    "generated_at": "2026-11-29T12:00:30.120000Z",
                }
            ]
        }
    )

    statuses: list[str]
    queues: list[QueueCountsOut]
    other_queues: int
    other_counts: dict[str, int]
    totals: dict[str, int]
    total: int
    throughput: list[MinuteOut]
    done_last_hour: int
    failed_last_hour: int
    failure_rate: float | None
    workers: WorkersOut | None
    without_worker: list[WithoutWorkerOut] = []
    generated_at: datetime
    counts_estimated: bool = Field(
        default=False,
        description="True when done, failed and cancelled counts are the planner's estimates "
        "(more than 100,000 finished rows); todo and in_progress are always exact.",
    )

    @classmethod
    def of(cls, overview: Overview, workers: WorkersOut | None) -> OverviewOut:
        """Build from the service's :class:`jobqueue.dashboard.Overview`."""
        return cls(
            statuses=[str(status) for status in overview.totals],
            queues=[
                QueueCountsOut(
                    queue=q.queue,
                    counts={str(status): n for status, n in q.counts.items()},
                    total=q.total,
                )
                for q in overview.queues
            ],
            other_queues=overview.other_queues,
            other_counts={str(status): n for status, n in overview.other_counts.items()},
            totals={str(status): n for status, n in overview.totals.items()},
            total=overview.total,
            throughput=[
                MinuteOut(minute=m.minute, done=m.done, failed=m.failed)
                for m in overview.throughput
            ],
            done_last_hour=overview.done_last_hour,
            failed_last_hour=overview.failed_last_hour,
            failure_rate=overview.failure_rate,
            workers=workers,
            without_worker=[
                WithoutWorkerOut(queue=queue, task=task, jobs=jobs)
                for queue, task, jobs in overview.without_worker
            ],
            generated_at=overview.generated_at,
            counts_estimated=overview.counts_estimated,
        )

    def for_template(self) -> dict[str, Any]:
        """The JSON-ready dict (datetimes as RFC 3339 strings) the page embeds and renders."""
        return self.model_dump(mode="json")
