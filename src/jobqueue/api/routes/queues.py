"""``/queues``: every queue with its counts, and pause / resume (``service/_queues.py``).

Roles (``api/auth.py``): the list needs ``read``; pause and resume need ``admin`` and leave an
``audit`` log event with who did it (``api/audit.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from jobqueue.access import Role
from jobqueue.api.audit import audited, who
from jobqueue.api.auth import ACCESS_RESPONSES, needs
from jobqueue.api.deps import Service
from jobqueue.api.guard import GuardedRoute
from jobqueue.api.schemas import MAX_QUEUE_LENGTH, ErrorOut
from jobqueue.jobs import QUEUE_NAME_PATTERN
from jobqueue.service import QueueInfo

router = APIRouter(
    prefix="/queues", tags=["queues"], responses=ACCESS_RESPONSES, route_class=GuardedRoute
)

QueueName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_QUEUE_LENGTH,
        pattern=QUEUE_NAME_PATTERN,
        description="The queue's name: 1 to 100 of A-Z a-z 0-9 _ . : -",
    ),
]


class QueueOut(BaseModel):
    """A queue: jobs per status, whether it is paused (since when, by whom), the runner slots
    live processes give it, and how long its oldest due job has waited (seconds)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "default",
                    "counts": {
                        "todo": 12,
                        "in_progress": 4,
                        "done": 5120,
                        "failed": 3,
                        "cancelled": 0,
                    },
                    "paused": False,
                    "paused_at": None,
                    "paused_by": None,
                    "slots_online": 20,
                    "oldest_due_seconds": 0.8,
                    "counts_estimated": False,
                }
            ]
        }
    )

    name: str
    counts: dict[str, int] = Field(description="Jobs per status (every status, 0 when none).")
    paused: bool = Field(description="True while no process claims the queue's jobs.")
    paused_at: datetime | None = None
    paused_by: str | None = Field(default=None, description="The API key name that paused it.")
    slots_online: int = Field(description="Runner slots of live processes serving the queue.")
    oldest_due_seconds: float | None = Field(
        default=None,
        description="Seconds the oldest due todo job has waited past its run_at; null: none due.",
    )
    counts_estimated: bool = Field(
        default=False,
        description="True when done, failed and cancelled are the planner's estimates (more "
        "than 100,000 finished rows in the table); todo and in_progress are always exact.",
    )

    @classmethod
    def of(cls, info: QueueInfo) -> QueueOut:
        """The API shape of a :class:`QueueInfo`."""
        return cls(
            name=info.name,
            counts={str(status): jobs for status, jobs in info.counts.items()},
            paused=info.paused,
            paused_at=info.paused_at,
            paused_by=info.paused_by,
            slots_online=info.slots_online,
            oldest_due_seconds=info.oldest_due_seconds,
            counts_estimated=info.counts_estimated,
        )


class QueueList(BaseModel):
    """Every known queue, and every queue with jobs, by name."""

    items: list[QueueOut]


class QueueState(BaseModel):
    """A queue's pause state after a pause or resume."""

    name: str
    paused: bool
    paused_at: datetime | None = None
    paused_by: str | None = None


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "The queue is not known."}
}


@router.get("", response_model=QueueList, openapi_extra=needs(Role.READ))
async def list_queues(service: Service) -> QueueList:
    """Every known queue (configured, served by a live process, or paused before) and every
    queue with jobs (at most 500), by name: jobs per status, paused or not, runner slots online
    (from the process registry), and the age of its oldest due job in seconds.

    ``todo`` and ``in_progress`` are counted exactly through their partial indexes; finished
    jobs exactly up to 100,000 finished rows, above that from the planner's statistics
    (``counts_estimated``): no read scans the whole table.
    """
    return QueueList(items=[QueueOut.of(q) for q in await service.queues.list()])


@router.post(
    "/{name}/pause", response_model=QueueState, responses=NOT_FOUND, openapi_extra=needs(Role.ADMIN)
)
async def pause_queue(name: QueueName, service: Service, request: Request) -> QueueState:
    """Pause a queue: every process stops claiming its jobs from its next claim on (at once:
    each claim reads the pause); running jobs finish; new jobs are still accepted and wait.
    Pausing a paused queue changes nothing. Logged as an ``audit`` event with who did it.

    Errors: 404 when the queue is not known (the message lists the known ones); 422 for a
    name that is not a queue name.
    """
    with audited(request, "pause", queue=name):
        info = await service.queues.pause(name, who(request)["principal"])
    return QueueState(
        name=info.name, paused=info.paused, paused_at=info.paused_at, paused_by=info.paused_by
    )


@router.post(
    "/{name}/resume",
    response_model=QueueState,
    responses=NOT_FOUND,
    openapi_extra=needs(Role.ADMIN),
)
async def resume_queue(name: QueueName, service: Service, request: Request) -> QueueState:
    """Resume a paused queue: claimers in every process are woken (NOTIFY) and take its due
    jobs at once. Resuming a queue that is not paused changes nothing. Logged as an ``audit``
    event. Errors: 404 when the queue is not known; 422 for a name that is not a queue name.
    """
    with audited(request, "resume", queue=name):
        info = await service.queues.resume(name, who(request)["principal"])
    return QueueState(name=info.name, paused=False)
