"""``/ui``: the web dashboard, server-rendered with jinja2 (autoescaped) plus a little JS.

Pages: the overview (``/ui``, live: its script polls ``/ui/api/overview`` every 2 s), the job
list (``/ui/jobs``, filters and keyset pagination) and a job's detail (``/ui/jobs/{id}``,
whose buttons call the JSON API: cancel, retry, enqueue a copy; it shows at most 64 KiB of
the payload and of the result, and links to the whole of each as JSON at
``/ui/jobs/{id}/payload`` and ``/ui/jobs/{id}/result``). The job list shows no payload or
result at all (``JobSummary``), so a page of it is small whatever the jobs hold. Templates are in
``api/ui/templates``, scripts and styles in ``api/ui/static`` (served at ``/ui/static``): nothing
is loaded from elsewhere, and the pages' Content-Security-Policy says so.

Access (``api/auth.py``): with ``JOBQUEUE_API_KEYS`` set, every page needs a session from the
login form (``login.py``) or a bearer key, and the buttons follow the key's role: a ``write``
session may enqueue a copy, an ``admin`` one also cancel and retry.

This module only maps: the reads are :class:`jobqueue.service.dashboard.DashboardService` and
:class:`jobqueue.service.JobService`, and domain errors become error pages with the status
``api/errors.py`` gives them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from jobqueue.access import Role
from jobqueue.api.auth import ACCESS_RESPONSES, needs
from jobqueue.api.deps import Dashboard, RuntimeDep, Service
from jobqueue.api.guard import GuardedRoute
from jobqueue.api.routes.jobs import JobId
from jobqueue.api.state import Runtime
from jobqueue.api.ui._render import MAX_SHOWN_BYTES, error_page, json_preview, render_page
from jobqueue.api.ui.schemas import OverviewOut, WorkersOut
from jobqueue.errors import InvalidJobRequest, JobQueueError
from jobqueue.jobs import JobFilter, JobStatus
from jobqueue.service.dashboard import Overview, timeline

MAX_ID = 2**63 - 1  # bigint
PAGE_SIZE = 50
MAX_TASK_CHOICES = 50
"""Task names the job list's filter suggests (the registry's first, by name)."""

router = APIRouter(prefix="/ui", tags=["dashboard"], route_class=GuardedRoute)

PAGE = needs(Role.READ, login_page=True)
"""The pages' rule: ``read``, and the login form for a browser without a session."""


def _workers(runtime: Runtime, overview: Overview) -> WorkersOut | None:
    """Busy and total runner slots over every live process: this one's now, the others' as of
    their last registry renewal; None when no process runs workers."""
    own_id = None if runtime.pool is None else runtime.pool.config.worker_id
    others = [p for p in overview.processes if p.worker_id != own_id]
    busy = sum(p.busy for p in others)
    total = sum(sum(p.slots.values()) for p in others)
    if runtime.workers is not None:
        own_busy, own_total = runtime.workers()
        busy, total = busy + own_busy, total + own_total
    if total == 0 and runtime.workers is None:
        return None
    return WorkersOut(busy=busy, total=total)


@router.get(
    "/api/overview",
    response_model=OverviewOut,
    responses=ACCESS_RESPONSES,
    openapi_extra=needs(Role.READ),
)
async def overview_data(runtime: RuntimeDep, dashboard: Dashboard) -> OverviewOut:
    """The overview the dashboard's front page shows and polls every 2 s: jobs per queue and
    status (the 50 largest queues; ``other_queues`` and ``other_counts`` sum up the rest), jobs
    finished per minute over the last hour, the failure rate, busy runner slots over every live
    process (the process registry).

    Read at most once a second whatever the number of callers. Errors: 503 database
    unreachable. Like every response under ``/ui`` it is sent with ``Cache-Control: no-store``
    (``api/middleware.py``).
    """
    overview = await dashboard.overview()
    return OverviewOut.of(overview, _workers(runtime, overview))


@router.get("", response_class=HTMLResponse, include_in_schema=False, openapi_extra=PAGE)
async def overview_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """The overview page (see :func:`overview_data`)."""
    try:
        overview = await runtime.dashboard.overview()
        data = OverviewOut.of(overview, _workers(runtime, overview))
    except JobQueueError as exc:
        return error_page(request, exc)
    return render_page(request, "overview.html", {"nav": "overview", "data": data.for_template()})


@router.get("/jobs", response_class=HTMLResponse, include_in_schema=False, openapi_extra=PAGE)
async def jobs_page(
    request: Request,
    dashboard: Dashboard,
    service: Service,
    status: Annotated[str, Query(max_length=20)] = "",
    queue: Annotated[str, Query(max_length=100)] = "",
    task: Annotated[str, Query(max_length=200)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """The job list: newest first, filtered by status, queue, task and text in the
    description; the "next page" link carries the filters and a keyset cursor."""
    filters = {"status": status, "queue": queue, "task": task, "q": q}
    try:
        try:
            status_filter = JobStatus(status) if status else None
        except ValueError:
            raise InvalidJobRequest(
                f"status {status!r} is not one of {', '.join(JobStatus)}"
            ) from None
        page = await dashboard.search(
            JobFilter(status_filter, queue, task, q), limit=PAGE_SIZE, cursor=cursor
        )
    except JobQueueError as exc:
        return error_page(request, exc)
    kept = {name: value for name, value in filters.items() if value}
    context = {
        "nav": "jobs",
        "jobs": page.items,
        "filters": filters,
        "statuses": list(JobStatus),
        "tasks": sorted(service.registry.names())[:MAX_TASK_CHOICES],
        "filtered": bool(kept),
        "first_query": urlencode(kept),
        "next_query": urlencode({**kept, "cursor": page.next_cursor}) if page.next_cursor else None,
        "paged": cursor is not None,
    }
    return render_page(request, "jobs.html", context)


def _job_number(job_id: str) -> int:
    """The id in a path segment, or 0 when it is not 1 to 2^63-1 in ASCII digits."""
    # str.isdigit() is also true of "²" and other non-ASCII digits, which int() refuses.
    digits = job_id.isascii() and job_id.isdigit()
    number = int(job_id) if digits and len(job_id) <= 19 else 0
    return number if 1 <= number <= MAX_ID else 0


@router.get(
    "/jobs/{job_id}",
    response_class=HTMLResponse,
    include_in_schema=False,
    openapi_extra=PAGE,
)
async def job_page(request: Request, job_id: str, service: Service) -> HTMLResponse:
    """One job: fields, payload, result, error, attempts, timeline, and the action buttons.

    The payload and the result are shown pretty-printed up to ``MAX_SHOWN_BYTES`` (64 KiB)
    each, then cut with a note linking to the whole value (:func:`job_payload`,
    :func:`job_result`): a page never
    holds more HTML than that, however large the stored JSON (up to
    ``JOBQUEUE_MAX_PAYLOAD_BYTES`` and ``JOBQUEUE_MAX_RESULT_BYTES``).

    The page's data for its script carries the id as a string (a JavaScript number holds
    integers exactly only up to 2^53, and a job id must reach the API unchanged); "enqueue a
    copy" fetches the payload's JSON text from :func:`job_payload` and sends it back as text, so
    a payload number above 2^53 is copied exactly too.
    """
    number = _job_number(job_id)
    try:
        if number == 0:
            return render_page(
                request, "error.html", {"status": 404, "message": f"no job {job_id!r}"}, 404
            )
        job = await service.get(number)
        attempts = await service.attempts(number)
    except JobQueueError as exc:
        return error_page(request, exc)
    copy = {
        "task": job.task,
        "queue": job.queue,
        "priority": job.priority,
        "description": job.description,
    }
    context = {
        "nav": "jobs",
        "job": job,
        "attempts": attempts,
        "events": timeline(job, attempts),
        "payload": json_preview(job.payload),
        "result": None if job.result is None else json_preview(job.result),
        "shown_kib": MAX_SHOWN_BYTES // 1024,
        "page_data": {"id": str(job.id), "status": str(job.status), "copy": copy},
        "can_cancel": job.status in (JobStatus.TODO, JobStatus.IN_PROGRESS),
        "can_retry": job.status in (JobStatus.FAILED, JobStatus.CANCELLED),
    }
    return render_page(request, "job.html", context)


def _json_response(value: Any) -> Response:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return Response(
        text, media_type="application/json", headers={"X-Content-Type-Options": "nosniff"}
    )


@router.get(
    "/jobs/{job_id:int}/payload",
    include_in_schema=False,
    responses=ACCESS_RESPONSES,
    openapi_extra=needs(Role.READ),
)
async def job_payload(job_id: JobId, service: Service) -> Response:
    """A job's whole payload as compact JSON text (``application/json``, at most
    ``JOBQUEUE_MAX_PAYLOAD_BYTES``): what the job page links to when it shows only the first
    64 KiB, and what its "enqueue a copy" sends back unchanged (as text: no number of it
    passes through a JavaScript number).

    Errors: 404 no such job; 422 an id of 0 or past 2^63-1; 503 database unreachable.
    """
    return _json_response((await service.get(job_id)).payload)


@router.get(
    "/jobs/{job_id:int}/result",
    include_in_schema=False,
    responses=ACCESS_RESPONSES,
    openapi_extra=needs(Role.READ),
)
async def job_result(job_id: JobId, service: Service) -> Response:
    """A job's whole result as compact JSON text (``application/json``, at most
    ``JOBQUEUE_MAX_RESULT_BYTES``; ``null`` before it has one): what the job page links to when
    it shows only the first 64 KiB.

    Errors: 404 no such job; 422 an id of 0 or past 2^63-1; 503 database unreachable.
    """
    return _json_response((await service.get(job_id)).result)
