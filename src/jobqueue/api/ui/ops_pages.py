"""``/ui/queues``, ``/ui/schedules`` and ``/ui/processes``: the operator's pages.

Server-rendered like the other pages (``pages.py``); the Pause and Resume buttons call the JSON
API under ``/ui/api`` (``static/actions.js``, with the session's CSRF token) and are enabled
for an ``admin`` key only. The reads are the service's: :meth:`Queues.list`,
:meth:`Schedules.list_all` and the process registry.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from jobqueue.access import Role
from jobqueue.api.auth import needs
from jobqueue.api.deps import Service
from jobqueue.api.guard import GuardedRoute
from jobqueue.api.ui._render import error_page, render_page
from jobqueue.errors import JobQueueError
from jobqueue.jobs import JobStatus

router = APIRouter(prefix="/ui", tags=["dashboard"], route_class=GuardedRoute)

PAGE = needs(Role.READ, login_page=True)

SCHEDULES_SHOWN = 500
"""Schedules the page lists (by name; ``GET /schedules`` pages through all of them)."""


@router.get("/queues", response_class=HTMLResponse, include_in_schema=False, openapi_extra=PAGE)
async def queues_page(request: Request, service: Service) -> HTMLResponse:
    """Every queue: paused or not (with Pause / Resume), slots online, jobs per status and the
    age of its oldest due job."""
    try:
        queues = await service.queues.list()
    except JobQueueError as exc:
        return error_page(request, exc)
    context = {"nav": "queues", "queues": queues, "statuses": list(JobStatus)}
    return render_page(request, "queues.html", context)


@router.get("/schedules", response_class=HTMLResponse, include_in_schema=False, openapi_extra=PAGE)
async def schedules_page(request: Request, service: Service) -> HTMLResponse:
    """The first :data:`SCHEDULES_SHOWN` schedules by name: cron and time zone, the job it
    creates, next and last run (with a link to the last job), and Pause / Resume; a note says
    when there are more (``GET /schedules`` pages through them all)."""
    try:
        found = await service.schedules.list_all(limit=SCHEDULES_SHOWN + 1)
    except JobQueueError as exc:
        return error_page(request, exc)
    context = {
        "nav": "schedules",
        "schedules": found[:SCHEDULES_SHOWN],
        "more_after": found[SCHEDULES_SHOWN - 1].name if len(found) > SCHEDULES_SHOWN else None,
    }
    return render_page(request, "schedules.html", context)


@router.get("/processes", response_class=HTMLResponse, include_in_schema=False, openapi_extra=PAGE)
async def processes_page(request: Request, service: Service) -> HTMLResponse:
    """The live processes of the registry: id, host, pid, role, version, queues with slots, busy
    slots, started and last seen."""
    try:
        processes = await service.processes()
    except JobQueueError as exc:
        return error_page(request, exc)
    return render_page(request, "processes.html", {"nav": "processes", "processes": processes})
