"""``/schedules``: periodic jobs (cron), see ``service/_schedules.py`` for the rules.

Roles (``api/auth.py``): reads need ``read``; create, change, delete, pause and resume need
``admin`` and leave an ``audit`` log event with who did it. Bodies are strict JSON like the
job routes' (``api/bodies.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from jobqueue.access import Role
from jobqueue.api.audit import audited
from jobqueue.api.auth import ACCESS_RESPONSES, needs
from jobqueue.api.bodies import Utf8JsonRoute
from jobqueue.api.deps import Service
from jobqueue.api.guard import GuardedRoute
from jobqueue.api.schemas import MAX_QUEUE_LENGTH, MAX_TASK_LENGTH, ErrorOut
from jobqueue.jobs import QUEUE_NAME_PATTERN, TASK_NAME_PATTERN
from jobqueue.service import ScheduleSpec
from jobqueue.service._cron import MAX_CRON_LENGTH
from jobqueue.service._schedules import ScheduleRow

NAME_PATTERN = QUEUE_NAME_PATTERN
"""A schedule's name: 1 to 100 of ``A-Za-z0-9_.:-`` (like a queue's)."""


class SchedulesRoute(GuardedRoute, Utf8JsonRoute):
    """The access check before the body is read, then the UTF-8 JSON check."""


router = APIRouter(
    prefix="/schedules", tags=["schedules"], responses=ACCESS_RESPONSES, route_class=SchedulesRoute
)

ScheduleName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_QUEUE_LENGTH,
        pattern=NAME_PATTERN,
        description="The schedule's name: 1 to 100 of A-Z a-z 0-9 _ . : -",
    ),
]

CRON_HELP = (
    "Five cron fields (minute hour day-of-month month day-of-week), e.g. '*/5 * * * *', or "
    "@hourly, @daily, @weekly, @monthly, @yearly."
)
TIMEZONE_HELP = "IANA time zone of the cron fields, e.g. Europe/Paris (default UTC)."


class ScheduleIn(BaseModel):
    """A new schedule: the cron expression and time zone, and the job each slot creates."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "nightly-report",
                    "cron": "0 3 * * *",
                    "timezone": "Europe/Paris",
                    "task": "echo",
                    "payload": {"report": "daily"},
                    "queue": "default",
                    "priority": 0,
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=MAX_QUEUE_LENGTH, pattern=NAME_PATTERN)
    cron: str = Field(min_length=1, max_length=MAX_CRON_LENGTH, description=CRON_HELP)
    task: str = Field(min_length=1, max_length=MAX_TASK_LENGTH, pattern=TASK_NAME_PATTERN)
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str = Field(
        default="default", min_length=1, max_length=MAX_QUEUE_LENGTH, pattern=QUEUE_NAME_PATTERN
    )
    priority: int = Field(default=0, ge=-100, le=100)
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description=TIMEZONE_HELP)

    def spec(self) -> ScheduleSpec:
        """The service's definition."""
        return ScheduleSpec(**self.model_dump())


class SchedulePatch(BaseModel):
    """Some fields of a schedule to change; the others stay."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"cron": "30 3 * * *"}, {"payload": {"report": "x"}}]},
    )

    cron: str | None = Field(
        default=None, min_length=1, max_length=MAX_CRON_LENGTH, description=CRON_HELP
    )
    task: str | None = Field(
        default=None, min_length=1, max_length=MAX_TASK_LENGTH, pattern=TASK_NAME_PATTERN
    )
    payload: dict[str, Any] | None = None
    queue: str | None = Field(
        default=None, min_length=1, max_length=MAX_QUEUE_LENGTH, pattern=QUEUE_NAME_PATTERN
    )
    priority: int | None = Field(default=None, ge=-100, le=100)
    timezone: str | None = Field(
        default=None, min_length=1, max_length=64, description=TIMEZONE_HELP
    )


class ScheduleOut(BaseModel):
    """A schedule with its next slot and its last run (times RFC 3339, UTC)."""

    name: str
    cron: str
    timezone: str
    task: str
    payload: Any
    queue: str
    priority: int
    paused: bool
    source: str = Field(description="api, or settings (JOBQUEUE_SCHEDULES: rewritten at start).")
    next_run_at: datetime = Field(description="The next slot (not while paused).")
    last_run_at: datetime | None = Field(description="The slot of the last job it created.")
    last_job_id: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ScheduleRow) -> ScheduleOut:
        """The API shape of a stored schedule."""
        return cls(**{field: getattr(row, field) for field in cls.model_fields})


class ScheduleList(BaseModel):
    """A page of schedules, by name; ``next_after``: pass it as ``after`` for the next page
    (null on the last)."""

    items: list[ScheduleOut]
    next_after: str | None = None


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {404: "No such schedule.", 409: "The name is taken.", 422: "A bad definition."}
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


@router.get("", response_model=ScheduleList, openapi_extra=needs(Role.READ))
async def list_schedules(
    service: Service,
    after: Annotated[
        str,
        Query(
            max_length=MAX_QUEUE_LENGTH,
            pattern=r"^[A-Za-z0-9_.:-]*$",
            description="The last name of the page before (a schedule name, or empty).",
        ),
    ] = "",
    limit: Annotated[int, Query(ge=1, le=500, description="Schedules per page.")] = 100,
) -> ScheduleList:
    """Schedules by name, with their next slot and last run, a page of ``limit`` (default 100,
    at most 500) after the name ``after``; ``next_after`` names where the next page starts.
    A schedule's payload is at most 64 KiB, so a page is bounded. Errors: 422 for a limit out
    of range."""
    found = await service.schedules.list_all(after, limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return ScheduleList(
        items=[ScheduleOut.of(r) for r in page], next_after=page[-1].name if more else None
    )


@router.get(
    "/{name}", response_model=ScheduleOut, responses=_errors(404), openapi_extra=needs(Role.READ)
)
async def get_schedule(name: ScheduleName, service: Service) -> ScheduleOut:
    """One schedule. Errors: 404 when there is none."""
    return ScheduleOut.of(await service.schedules.get(name))


@router.post(
    "",
    response_model=ScheduleOut,
    status_code=status.HTTP_201_CREATED,
    responses=_errors(409, 422),
    openapi_extra=needs(Role.ADMIN),
)
async def create_schedule(body: ScheduleIn, service: Service, request: Request) -> ScheduleOut:
    """Define a schedule: from its first slot after now, each slot creates one job (the
    idempotency key ``schedule:<name>:<slot>``), whichever processes run the scheduler.

    Errors: 409 the name is taken; 422 a cron expression that is not five fields or never
    matches, an unknown time zone, task or queue, or a payload the task refuses.
    """
    with audited(request, "schedule_create", target=body.name):
        row = await service.schedules.create(body.spec())
    return ScheduleOut.of(row)


@router.patch(
    "/{name}",
    response_model=ScheduleOut,
    responses=_errors(404, 422),
    openapi_extra=needs(Role.ADMIN),
)
async def update_schedule(
    name: ScheduleName, body: SchedulePatch, service: Service, request: Request
) -> ScheduleOut:
    """Change some fields; a new cron or time zone moves the next slot to the first after now.
    A schedule from the settings gets its definition back at the next start of a worker. A
    field sent as ``null`` stays as it is. Errors: 404 no such schedule; 422 as for create."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    with audited(request, "schedule_update", target=name):
        row = await service.schedules.update(name, changes)
    return ScheduleOut.of(row)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors(404),
    openapi_extra=needs(Role.ADMIN),
)
async def delete_schedule(name: ScheduleName, service: Service, request: Request) -> Response:
    """Delete a schedule; the jobs it created stay. One from the settings comes back at the next
    start of a worker while the settings list it. Errors: 404 no such schedule."""
    with audited(request, "schedule_delete", target=name):
        await service.schedules.delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{name}/pause",
    response_model=ScheduleOut,
    responses=_errors(404),
    openapi_extra=needs(Role.ADMIN),
)
async def pause_schedule(name: ScheduleName, service: Service, request: Request) -> ScheduleOut:
    """Pause a schedule: no slot fires until it is resumed. Errors: 404."""
    with audited(request, "schedule_pause", target=name):
        row = await service.schedules.set_paused(name, True)
    return ScheduleOut.of(row)


@router.post(
    "/{name}/resume",
    response_model=ScheduleOut,
    responses=_errors(404),
    openapi_extra=needs(Role.ADMIN),
)
async def resume_schedule(name: ScheduleName, service: Service, request: Request) -> ScheduleOut:
    """Resume a schedule: its next slot is the first after now (slots missed while paused do
    not run). Errors: 404."""
    with audited(request, "schedule_resume", target=name):
        row = await service.schedules.set_paused(name, False)
    return ScheduleOut.of(row)
